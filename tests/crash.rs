//! Acknowledged means durable: a `sluis import` killed with SIGKILL at random
//! points never loses an event it had reported as stored, and the store opens
//! cleanly afterwards.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step is the failure

mod common;

use common::*;
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[test]
fn sigkill_during_import_loses_nothing_acknowledged() {
    let node = TestNode::new();
    let src = node.dir.path().join("feed");
    std::fs::create_dir(&src).unwrap();
    let mut expected: HashMap<String, serde_json::Value> = HashMap::new();
    for seed in 0..600u64 {
        let ev = generated_event(1000 + seed, 40);
        let uuid = ev["Event"]["uuid"].as_str().unwrap().to_owned();
        std::fs::write(src.join(format!("{seed:04}.json")), ev.to_string()).unwrap();
        expected.insert(uuid, ev);
    }
    let mut acknowledged: Vec<String> = Vec::new();
    let mut rng = sluis::testdata::Rng::new(42);
    for round in 0..4 {
        let mut child = Command::new(sluis_bin())
            .args(["import", "--config"])
            .arg(&node.config)
            .arg(&src)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stop_after = 20 + rng.below(120) as usize;
        let mut seen = 0;
        let reader = BufReader::new(child.stdout.take().unwrap());
        for line in reader.lines() {
            let line = line.unwrap();
            let f: Vec<&str> = line.split('\t').collect();
            if f[0] == "accepted" {
                acknowledged.push(f[2].to_owned());
                seen += 1;
                if seen >= stop_after {
                    break;
                }
            }
        }
        // Kill mid-flight: the importer is still writing the next group.
        child.kill().unwrap(); // SIGKILL on Unix
        let _ = child.wait();

        let store = node.open();
        for uuid in &acknowledged {
            let u: uuid::Uuid = uuid.parse().unwrap();
            let ev = store
                .get_event(&u)
                .unwrap()
                .unwrap_or_else(|| panic!("round {round}: acknowledged event {uuid} lost"));
            let orig = &expected[uuid]["Event"];
            let orig_values: Vec<&str> = orig["Attribute"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["value"].as_str().unwrap())
                .collect();
            assert_eq!(
                ev.attributes.len(),
                orig_values.len(),
                "round {round}: event {uuid} incomplete"
            );
            for a in &ev.attributes {
                assert!(
                    orig_values.contains(&a.value.as_str()),
                    "round {round}: {uuid}: unexpected value {}",
                    a.value
                );
            }
        }
        drop(store);
    }
    assert!(
        acknowledged.len() >= 80,
        "only {} acknowledged",
        acknowledged.len()
    );
    // A final uninterrupted run completes the import with no duplicates.
    let out = node.sluis(&["import", src.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let store = node.open();
    assert_eq!(store.event_count(), expected.len());
}
