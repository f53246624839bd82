//! Seal and verify throughput, in attributes per second on one core, for events of
//! 10, 100 and 10 000 attributes (issue 4 target: ≥ 100 000 attributes/s each).
//!
//! Run with `cargo bench --bench seal`; prints a Markdown table. Each figure is the
//! best of five timed rounds (each round repeats the operation for at least
//! ~0.2 s), which filters out noise from other work on a shared machine.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step is the failure

use sluis::model::parse::parse_event;
use sluis::model::validate::validate_event;
use sluis::model::Event;
use sluis::seal::{seal_event, verify_event, NodeKey, TrustList};
use std::hint::black_box;
use std::time::{Duration, Instant};
use uuid::Uuid;

const ORG: Uuid = Uuid::from_u128(0x5c1b_0000_0000_4000_8000_0000_0000_000a);
const NOW: u64 = 1_800_000_000;
const ROUNDS: usize = 5;
const ROUND_TIME: Duration = Duration::from_millis(200);

fn event(n: usize) -> Event {
    let json = sluis::testdata::generated_event_json(7, n);
    let bytes = serde_json::to_vec(&json).expect("generated event serialises");
    let mut e = parse_event(&bytes, 1 << 30).expect("generated event parses");
    validate_event(&mut e, NOW).expect("generated event validates");
    e
}

/// Operations per second of `op`, best of [`ROUNDS`].
fn rate(mut op: impl FnMut()) -> f64 {
    op(); // warm-up
    let mut best = 0f64;
    for _ in 0..ROUNDS {
        let start = Instant::now();
        let mut n = 0u64;
        while n < 3 || start.elapsed() < ROUND_TIME {
            op();
            n += 1;
        }
        best = best.max(n as f64 / start.elapsed().as_secs_f64());
    }
    best
}

fn fmt_rate(r: f64) -> String {
    let s = format!("{:.0}", r);
    // Thousands separators for readability.
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

fn main() {
    let key = NodeKey::generate().expect("OS randomness");
    let mut trust = TrustList::new();
    trust
        .add(ORG, &key.public_key_b64(), None, None)
        .expect("own key is valid");

    // Seals are signed at the real clock (`seal_event`), so verify at it too.
    let now = sluis::model::time::now_secs();
    println!("| attributes per event | seal: events/s | seal: attributes/s | verify: events/s | verify: attributes/s |");
    println!("|---:|---:|---:|---:|---:|");
    for n in [10usize, 100, 10_000] {
        let mut e = event(n);
        let seal = rate(|| seal_event(black_box(&mut e), &key, ORG).expect("seals"));
        let verify = rate(|| {
            black_box(verify_event(black_box(&e), &trust, now).expect("verifies"));
        });
        println!(
            "| {} | {} | {} | {} | {} |",
            fmt_rate(n as f64),
            fmt_rate(seal),
            fmt_rate(seal * n as f64),
            fmt_rate(verify),
            fmt_rate(verify * n as f64),
        );
    }
}
