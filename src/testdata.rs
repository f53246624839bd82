//! Deterministic synthetic MISP events for benchmarks, load tests and fuzz seeds.
//!
//! The mix of types follows what national CERT feeds carry most: network
//! indicators (IPs, domains, URLs), file hashes, e-mail addresses, with a few CIDR
//! ranges and composite values. Values are unique per (seed, index), so generated
//! events never trip the duplicate check, and are reproducible run to run.

use serde_json::{json, Value};
use std::path::PathBuf;

/// PyMISP's sample events, vendored in the repository (`tests/data/misp/`,
/// BSD 2-Clause, attribution in its `NOTICE.md`): the one place every test,
/// benchmark and fuzz seed finds real MISP data.
pub fn misp_samples_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/misp")
}

/// splitmix64: tiny, fast, good enough for test data (not for keys).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

const TLDS: [&str; 8] = ["com", "net", "org", "ru", "info", "xyz", "eu", "io"];
const WORDS: [&str; 12] = [
    "update", "secure", "login", "cdn", "mail", "portal", "sync", "files", "api", "docs", "auth",
    "static",
];

fn hex(rng: &mut Rng, len: usize) -> String {
    let mut s = String::with_capacity(len);
    while s.len() < len {
        s.push_str(&format!("{:016x}", rng.next_u64()));
    }
    s.truncate(len);
    s
}

fn domain(rng: &mut Rng, unique: u64) -> String {
    format!(
        "{}-{}{:x}.{}",
        WORDS[rng.below(12) as usize],
        WORDS[rng.below(12) as usize],
        unique,
        TLDS[rng.below(8) as usize]
    )
}

/// The `i`-th IPv4 address of the synthetic space (10.0.0.0/8 upwards, unique per i).
pub fn ipv4(unique: u64) -> String {
    let u = unique.wrapping_mul(2_654_435_761) % (1 << 28);
    format!(
        "{}.{}.{}.{}",
        16 + (u >> 24),
        (u >> 16) & 255,
        (u >> 8) & 255,
        u & 255
    )
}

/// One synthetic attribute value and its type, unique for `unique`.
pub fn attribute(rng: &mut Rng, unique: u64) -> (&'static str, String) {
    match rng.below(20) {
        0..=4 => ("ip-dst", ipv4(unique)),
        5 => ("ip-src", ipv4(unique)),
        6..=8 => ("domain", domain(rng, unique)),
        9 => ("hostname", format!("www.{}", domain(rng, unique))),
        10 | 11 => (
            "url",
            format!(
                "https://{}/{}/{}.php",
                domain(rng, unique),
                WORDS[rng.below(12) as usize],
                hex(rng, 6)
            ),
        ),
        12 => ("md5", hex(rng, 32)),
        13 | 14 => ("sha256", hex(rng, 64)),
        15 => ("sha1", hex(rng, 40)),
        16 => (
            "email-src",
            format!(
                "{}{}@{}",
                WORDS[rng.below(12) as usize],
                unique,
                domain(rng, unique)
            ),
        ),
        17 => (
            "ip-dst|port",
            format!("{}|{}", ipv4(unique), 1024 + rng.below(60000)),
        ),
        18 => (
            "filename",
            format!("{}_{:x}.exe", WORDS[rng.below(12) as usize], unique),
        ),
        _ => {
            let u = unique.wrapping_mul(2_654_435_761) % (1 << 20);
            (
                "ip-dst",
                format!("{}.{}.{}.0/24", 100 + (u >> 16), (u >> 8) & 255, u & 255),
            )
        }
    }
}

/// A published event of `n` attributes in MISP feed form, deterministic in `seed`.
pub fn generated_event_json(seed: u64, n: usize) -> Value {
    let mut rng = Rng::new(seed);
    let base = seed.wrapping_mul(1_000_003);
    let event_uuid = uuid::Uuid::from_u64_pair(
        0x5c1b_0000_0000_4000 | (seed >> 48),
        0x8000_0000_0000_0000 | seed,
    );
    let ts = 1_700_000_000 + seed % 10_000_000;
    let attrs: Vec<Value> = (0..n)
        .map(|i| {
            let (t, v) = attribute(&mut rng, base + i as u64);
            let au = uuid::Uuid::from_u64_pair(
                0x5c1b_0001_0000_4000 | (seed & 0xffff),
                0x8000_0000_0000_0000 | ((seed << 24) ^ i as u64),
            );
            json!({"uuid": au.to_string(), "type": t, "value": v, "timestamp": ts.to_string(),
                   "to_ids": true, "distribution": "5", "comment": ""})
        })
        .collect();
    json!({"Event": {
        "uuid": event_uuid.to_string(),
        "info": format!("Synthetic campaign {seed}"),
        "date": "2024-05-01",
        "threat_level_id": "2",
        "analysis": "1",
        "distribution": "3",
        "published": true,
        "timestamp": ts.to_string(),
        "publish_timestamp": ts.to_string(),
        "Orgc": {"name": "CERT-SYNTH", "uuid": "5c1b0000-0000-4000-8000-00000000c0de"},
        "Tag": [{"name": "tlp:green"}, {"name": format!("campaign:{}", seed % 50)}],
        "Attribute": attrs
    }})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_events_validate() {
        for seed in 0..20 {
            let v = generated_event_json(seed, 200);
            let bytes = serde_json::to_vec(&v).unwrap();
            let mut e = crate::model::parse::parse_event(&bytes, 1 << 24).unwrap();
            crate::model::validate::validate_event(&mut e, 1).unwrap();
            assert_eq!(e.attributes.len(), 200);
        }
    }
}
