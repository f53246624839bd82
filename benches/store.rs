//! Store benchmark: import rate, exact-value and CIDR lookup latency, bytes on disk
//! per attribute and peak RSS, on generated realistic events.
//!
//! ```text
//! cargo bench --bench store -- --attributes 1000000 [--per-event 100] [--dir PATH] [--lookups 20000] [--acked 2000]
//! ```
//! Results go to stdout as a Markdown table; `docs/performance.md` records them.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step is the failure

mod common;

use common::status_mib;
use sluis::model::parse::parse_event;
use sluis::store::{Durability, Store, StoreOptions};
use sluis::testdata::{generated_event_json, Rng};
use std::time::{Duration, Instant};

struct Args {
    attributes: usize,
    per_event: usize,
    dir: Option<std::path::PathBuf>,
    lookups: usize,
    /// Single acknowledged writes to time (0: skip).
    acked: usize,
}

fn args() -> Args {
    let mut a = Args {
        attributes: 1_000_000,
        per_event: 100,
        dir: None,
        lookups: 20_000,
        acked: 2_000,
    };
    let v: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < v.len() {
        let next = v.get(i + 1).cloned().unwrap_or_default();
        match v[i].as_str() {
            "--attributes" => a.attributes = next.parse().expect("--attributes N"),
            "--per-event" => a.per_event = next.parse().expect("--per-event N"),
            "--dir" => a.dir = Some(next.into()),
            "--lookups" => a.lookups = next.parse().expect("--lookups N"),
            "--acked" => a.acked = next.parse().expect("--acked N"),
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    a
}

fn dir_bytes(p: &std::path::Path) -> u64 {
    let mut n = 0;
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            let m = e.metadata().unwrap();
            n += if m.is_dir() {
                dir_bytes(&e.path())
            } else {
                m.len()
            };
        }
    }
    n
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e6
}

fn measure(name: &str, n: usize, mut f: impl FnMut(usize) -> usize) {
    let mut lat = Vec::with_capacity(n);
    let mut hits = 0;
    for i in 0..n {
        let t = Instant::now();
        hits += f(i);
        lat.push(t.elapsed());
    }
    lat.sort();
    println!(
        "| {name} | {n} | {:.1} | {:.1} | {:.1} | {hits} |",
        pct(&lat, 0.5),
        pct(&lat, 0.99),
        pct(&lat, 1.0)
    );
}

fn main() {
    let a = args();
    let tmp = tempfile::tempdir().unwrap();
    let dir = a.dir.clone().unwrap_or_else(|| tmp.path().join("db"));
    let store = Store::open(&dir, StoreOptions::default()).unwrap();
    let events = a.attributes.div_ceil(a.per_event);
    let mut sample_values = Vec::new();
    let mut import_time = Duration::ZERO;
    let started = Instant::now();
    for seed in 0..events as u64 {
        let doc = generated_event_json(seed, a.per_event);
        if seed % 7 == 0 {
            let attrs = doc["Event"]["Attribute"].as_array().unwrap();
            let v = attrs[(seed as usize) % attrs.len()]["value"]
                .as_str()
                .unwrap()
                .to_owned();
            sample_values.push(v);
        }
        let bytes = serde_json::to_vec(&doc).unwrap();
        // Timed: what `sluis import` does per event (parse, validate, store, group flush).
        let t = Instant::now();
        let e = parse_event(&bytes, 1 << 30).unwrap();
        store.put_event(e, Durability::Deferred).unwrap();
        if seed % 256 == 255 {
            store.flush().unwrap();
        }
        import_time += t.elapsed();
        if seed % 10_000 == 0 && seed > 0 {
            eprintln!(
                "  {} events, {:.0} attr/s",
                seed,
                (seed as usize * a.per_event) as f64 / import_time.as_secs_f64()
            );
        }
    }
    let t = Instant::now();
    store.flush().unwrap();
    import_time += t.elapsed();
    let wall = started.elapsed();
    let attrs = events * a.per_event;
    let disk = dir_bytes(&dir);
    let logical = store.logical_bytes().unwrap();
    println!(
        "## store benchmark: {attrs} attributes in {events} events of {}",
        a.per_event
    );
    println!();
    println!("| metric | value |");
    println!("|---|---|");
    println!(
        "| import (parse + validate + store + flush) | {:.0} attributes/s ({:.1} s) |",
        attrs as f64 / import_time.as_secs_f64(),
        import_time.as_secs_f64()
    );
    println!(
        "| wall time incl. generating the JSON | {:.1} s |",
        wall.as_secs_f64()
    );
    println!(
        "| bytes on disk | {} ({:.0} bytes/attribute) |",
        disk,
        disk as f64 / attrs as f64
    );
    println!(
        "| live keys + values (what sled must keep) | {} ({:.0} bytes/attribute) |",
        logical,
        logical as f64 / attrs as f64
    );
    println!(
        "| peak RSS after import | {:.0} MiB |",
        status_mib(None, "VmHWM:")
    );
    println!();
    println!("| lookup | n | p50 µs | p99 µs | max µs | hits |");
    println!("|---|---|---|---|---|---|");
    let mut rng = Rng::new(7);
    let n = a.lookups;
    measure("exact value, present", n, |_| {
        let v = &sample_values[rng.below(sample_values.len() as u64) as usize];
        store.lookup_value(v, false, 100).unwrap().len()
    });
    let mut rng = Rng::new(8);
    measure("exact value, absent", n, |_| {
        store
            .lookup_value(&format!("absent-{}.example", rng.next_u64()), false, 100)
            .unwrap()
            .len()
    });
    let mut rng = Rng::new(9);
    measure("IP inside stored CIDRs (33 probes)", n, |_| {
        let ip = sluis::testdata::ipv4(rng.below(attrs as u64 * 4));
        store
            .lookup_ip(ip.parse().unwrap(), false, 100)
            .unwrap()
            .len()
    });
    let mut rng = Rng::new(10);
    measure("CIDR /24 covering stored IPs", n, |_| {
        let ip = sluis::testdata::ipv4(rng.below(attrs as u64 * 4));
        let net: ipnet::IpNet = format!("{ip}/24").parse().unwrap();
        store.lookup_cidr(net, false, 1000).unwrap().len()
    });
    let mut rng = Rng::new(11);
    measure("suffix wildcard %.<word><hex>.<tld>", n / 10, |_| {
        store
            .lookup_wildcard(&format!("%{:x}.com", rng.below(1 << 12)), false, 100)
            .unwrap()
            .len()
    });
    println!();
    acknowledged_writes(&store, &dir, a.acked);
    println!();
    println!("peak RSS at end: {:.0} MiB", status_mib(None, "VmHWM:"));
}

/// What an acknowledgement costs: `n` single-event writes of 10 attributes with
/// `Durability::Flush` (what the API does), one writer and then 8 at once,
/// with the OS-level syncs they took (group-committed: concurrent writers share
/// one), and the cost of one `fdatasync` of the log file on this disk.
fn acknowledged_writes(store: &Store, dir: &std::path::Path, n: usize) {
    if n == 0 {
        return;
    }
    println!("| acknowledged writes (10 attributes each, Flush) | writes/s | p50 ms | p99 ms | OS syncs |");
    println!("|---|---|---|---|---|");
    let store = std::sync::Arc::new(store);
    for writers in [1usize, 8] {
        let syncs = store.os_syncs();
        let started = Instant::now();
        let lat = std::sync::Mutex::new(Vec::with_capacity(n));
        std::thread::scope(|scope| {
            for w in 0..writers {
                let store = store.clone();
                let lat = &lat;
                scope.spawn(move || {
                    for i in (w..n).step_by(writers) {
                        let seed = 50_000_000 + (writers * 10_000_000 + i) as u64;
                        let doc = generated_event_json(seed, 10);
                        let e = parse_event(&serde_json::to_vec(&doc).unwrap(), 1 << 30).unwrap();
                        let t = Instant::now();
                        store.put_event(e, Durability::Flush).unwrap();
                        lat.lock().unwrap().push(t.elapsed());
                    }
                });
            }
        });
        let took = started.elapsed();
        let mut lat = lat.into_inner().unwrap();
        lat.sort();
        let pct = |p: f64| lat[((lat.len() - 1) as f64 * p) as usize].as_secs_f64() * 1e3;
        println!(
            "| {writers} writer(s), {n} writes | {:.0} | {:.2} | {:.2} | {} |",
            n as f64 / took.as_secs_f64(),
            pct(0.5),
            pct(0.99),
            store.os_syncs() - syncs
        );
    }
    let f = std::fs::File::open(dir.join("db")).unwrap();
    let t = Instant::now();
    for _ in 0..100 {
        f.sync_data().unwrap();
    }
    println!(
        "| one fdatasync of the log file (nothing new to write), mean of 100 | | {:.3} | | |",
        t.elapsed().as_secs_f64() * 1e3 / 100.0
    );
}
