#[test]
fn timing() {
    let key = sluis::seal::NodeKey::generate().unwrap();
    let org = uuid::Uuid::new_v4();
    let raw = serde_json::to_vec(&serde_json::json!({"Event":{"info":"x","timestamp":"1700000000","date":"2023-11-14","uuid":uuid::Uuid::new_v4(),"Attribute":[{"type":"domain","value":"a.example"}]}})).unwrap();
    let mut ev = sluis::model::parse::parse_event(&raw, 1<<20).unwrap();
    let t = std::time::Instant::now();
    for _ in 0..100 { sluis::seal::seal_event(&mut ev, &key, org).unwrap(); }
    eprintln!("seal: {:?}/op", t.elapsed()/100);
    let mut trust = sluis::seal::TrustList::new();
    trust.add_key(org, key.verifying_key(), None, None).unwrap();
    let now = sluis::model::time::now_secs();
    let t = std::time::Instant::now();
    for _ in 0..100 { sluis::seal::verify_event(&ev, &trust, now).unwrap(); }
    eprintln!("verify: {:?}/op", t.elapsed()/100);
}
