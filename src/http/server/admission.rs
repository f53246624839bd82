//! Who gets a connection slot: at most `max_connections` at once in all, and at
//! most `max_connections_per_address` from one client address, so a single
//! unauthenticated client (half-open TLS records, dribbled handshakes) cannot
//! hold the slots everyone else needs. Refusals are counted and logged at most
//! once per [`LOG_EVERY`] with how many there were, so a flood cannot flood the
//! log too.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Shortest gap between two "connections refused" log lines.
pub(super) const LOG_EVERY: Duration = Duration::from_secs(10);

/// Open connections per client address.
#[derive(Debug, Default)]
pub(super) struct PerAddress {
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One connection counted against its address; released on drop.
pub(super) struct AddressSlot {
    table: Arc<PerAddress>,
    ip: IpAddr,
}

impl PerAddress {
    /// A slot for `ip`, unless it already holds `max` connections.
    pub(super) fn take(table: &Arc<PerAddress>, ip: IpAddr, max: usize) -> Option<AddressSlot> {
        let mut open = table.open.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(AddressSlot {
            table: table.clone(),
            ip,
        })
    }

    #[cfg(test)]
    fn open(&self, ip: IpAddr) -> usize {
        self.open
            .lock()
            .map(|m| m.get(&ip).copied().unwrap_or(0))
            .unwrap_or(0)
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut open = self.table.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                // The table holds only addresses with open connections.
                open.remove(&self.ip);
            }
        }
    }
}

/// Refused connections, logged in aggregate.
#[derive(Debug)]
pub(super) struct Refusals {
    state: Mutex<(Instant, u64, u64)>,
}

impl Refusals {
    pub(super) fn new() -> Self {
        Refusals {
            state: Mutex::new((Instant::now() - LOG_EVERY, 0, 0)),
        }
    }

    /// Counts one refusal (`per_address`: the address's cap, else the total
    /// cap) and logs the counts if the last line is old enough.
    pub(super) fn note(&self, per_address: bool, ip: IpAddr) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if per_address {
            st.1 += 1;
        } else {
            st.2 += 1;
        }
        if st.0.elapsed() >= LOG_EVERY {
            tracing::warn!(
                per_address_cap = st.1,
                total_cap = st.2,
                last_address = %ip,
                "connections refused at accept since the last report (limits.max_connections_per_address, limits.max_connections)"
            );
            *st = (Instant::now(), 0, 0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_per_address_and_released() {
        let t = Arc::new(PerAddress::default());
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let held: Vec<_> = (0..3)
            .map(|_| PerAddress::take(&t, a, 3).unwrap())
            .collect();
        assert!(PerAddress::take(&t, a, 3).is_none());
        assert!(PerAddress::take(&t, b, 3).is_some());
        drop(held);
        assert_eq!(t.open(a), 0);
        assert!(PerAddress::take(&t, a, 3).is_some());
    }
}
