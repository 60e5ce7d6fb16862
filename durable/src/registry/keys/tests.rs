use super::*;
use crate::memsql::MemSql;
use proptest::prelude::*;

fn random(seed: u8) -> [u8; RANDOM_BYTES] {
    let mut r = [0u8; RANDOM_BYTES];
    for (i, b) in r.iter_mut().enumerate() {
        *b = seed.wrapping_mul(31).wrapping_add(i as u8);
    }
    r
}

fn create(tenants: &[&str], expires_at: Option<i64>) -> CreateKey {
    CreateKey {
        tenants: tenants.iter().map(|s| (*s).to_owned()).collect(),
        label: "laptop".into(),
        expires_at,
    }
}

fn verify(key: &str) -> VerifyKey {
    VerifyKey {
        id: parse_key(key).expect("a key's shape"),
        hash: key_hash(key),
    }
}

#[test]
fn a_key_has_the_documented_shape() {
    let k = NewKey::from_random(&random(7));
    let id_hex = k.id.strip_prefix("ck_").unwrap();
    assert_eq!(id_hex.len(), 16);
    assert!(k.key.starts_with(&format!("claw_ck_{id_hex}_")));
    assert_eq!(k.key.len(), "claw_ck_".len() + 16 + 1 + 64);
    assert_eq!(k.prefix, format!("claw_ck_{}", &id_hex[..8]));
    assert!(k.key.starts_with(&k.prefix));
    assert_eq!(parse_key(&k.key), Some(k.id.clone()));
    assert!(is_key_id(&k.id));
    assert_eq!(k.hash, key_hash(&k.key));
    assert_eq!(k.hash.len(), 64);
    assert!(!k.hash.contains(id_hex), "the hash is not the key");
    // SHA-256 of "abc", the FIPS 180-2 example.
    assert_eq!(
        key_hash("abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}

#[test]
fn only_well_formed_keys_parse() {
    let good = NewKey::from_random(&random(1)).key;
    assert!(parse_key(&good).is_some());
    for bad in [
        "",
        "claw_ck_",
        "s3cret-admin-token",
        &good[..good.len() - 1],
        &format!("{good}0"),
        &good.to_uppercase(),
        &good.replacen("claw_ck_", "claw_cx_", 1),
        &good.replacen('_', "-", 3),
        "claw_ck_0123456789abcdef",
    ] {
        assert_eq!(parse_key(bad), None, "{bad:?}");
    }
    assert!(!is_key_id("ck_0123"));
    assert!(!is_key_id("ck_0123456789ABCDEF"));
    assert!(!is_key_id("po_12"));
}

#[test]
fn create_requests_are_checked() {
    let ok = CreateKey::parse(br#"{"tenants":["b-co","acme","acme"]}"#, 100).unwrap();
    assert_eq!(ok.tenants, ["acme", "b-co"], "sorted, without repeats");
    assert_eq!((ok.label.as_str(), ok.expires_at), ("", None));
    let ok =
        CreateKey::parse(br#"{"tenants":["acme"],"label":"ci","expiresAt":101}"#, 100).unwrap();
    assert_eq!(ok.expires_at, Some(101));
    let many: Vec<String> = (0..=MAX_KEY_TENANTS).map(|i| format!("t{i}")).collect();
    let many = serde_json::json!({ "tenants": many }).to_string();
    let long_label = format!(r#"{{"tenants":["acme"],"label":"{}"}}"#, "x".repeat(101));
    for (body, want) in [
        (r#"{"tenants":[]}"#, Some("tenants")),
        (r#"{"tenants":["Acme"]}"#, Some("tenants")),
        (many.as_str(), Some("tenants")),
        (long_label.as_str(), Some("label")),
        (r#"{"tenants":["acme"],"label":"a\nb"}"#, Some("label")),
        (r#"{"tenants":["acme"],"expiresAt":100}"#, Some("expiresAt")),
        (r#"{"tenants":["acme"],"expiresAt":-5}"#, Some("expiresAt")),
        (r#"{"tenants":["acme"],"admin":true}"#, None),
        (r#"{"label":"x"}"#, None),
        ("not json", None),
    ] {
        let p = CreateKey::parse(body.as_bytes(), 100).expect_err(body);
        assert_eq!(p.status, 400, "{body}");
        assert_eq!(p.field.as_deref(), want, "{body}");
    }
}

#[test]
fn create_list_authenticate_revoke() {
    let mut db = MemSql::new();
    let mut keys = Keys::open(&mut db).unwrap();
    let a = keys
        .create(&create(&["acme"], None), &random(1), 1_000)
        .unwrap()
        .unwrap();
    let b = keys
        .create(&create(&["b-co", "c-co"], Some(2_000)), &random(2), 1_000)
        .unwrap()
        .unwrap();
    // The same random bytes name the same id: refused, the caller draws again.
    assert_eq!(
        keys.create(&create(&["x-co"], None), &random(1), 1_000)
            .unwrap(),
        None
    );

    let grant = keys.authenticate(&verify(&a.key), 1_500).unwrap().unwrap();
    assert_eq!(grant.tenants, ["acme"]);
    assert_eq!(
        (grant.id.as_str(), grant.prefix.as_str()),
        (a.id.as_str(), a.prefix.as_str())
    );
    assert!(grant.covers("acme") && !grant.covers("b-co"));

    // A wrong secret under a real id, and an unknown id, do not authenticate.
    let forged = VerifyKey {
        id: a.id.clone(),
        hash: key_hash(&b.key),
    };
    assert_eq!(keys.authenticate(&forged, 1_500).unwrap(), None);
    let unknown = NewKey::from_random(&random(9)).key;
    assert_eq!(keys.authenticate(&verify(&unknown), 1_500).unwrap(), None);

    // Expiry: valid before, refused from the expiry second on.
    assert!(keys.authenticate(&verify(&b.key), 1_999).unwrap().is_some());
    assert_eq!(keys.authenticate(&verify(&b.key), 2_000).unwrap(), None);

    let page = keys.list(None, 50).unwrap();
    let listed = serde_json::to_string(&page).unwrap();
    assert_eq!(page.keys.len(), 2);
    for k in [&a, &b] {
        assert!(!listed.contains(&k.key), "a list never shows a key");
        assert!(!listed.contains(&key_hash(&k.key)), "nor its hash");
        assert!(listed.contains(&k.prefix));
    }

    let revoked = keys.revoke(&a.id, 1_600).unwrap().unwrap();
    assert_eq!(revoked.revoked_at, 1_600);
    assert_eq!(keys.authenticate(&verify(&a.key), 1_601).unwrap(), None);
    assert_eq!(keys.authenticate(&verify(&a.key), 1_600).unwrap(), None);
    // Revoking again keeps the first time; an unknown key is not found.
    assert_eq!(
        keys.revoke(&a.id, 1_700).unwrap().unwrap().revoked_at,
        1_600
    );
    assert_eq!(keys.revoke("ck_0000000000000000", 1_700).unwrap(), None);
    let listed = keys.list(None, 50).unwrap();
    let a_row = listed.keys.iter().find(|k| k.id == a.id).unwrap();
    assert_eq!(a_row.revoked_at, Some(1_600));
}

#[derive(Debug, Clone)]
enum Op {
    Create {
        tenants: Vec<usize>,
        expires_in: Option<i64>,
        seed: [u8; RANDOM_BYTES],
    },
    Revoke(usize),
    Wait(i64),
}

const SLUGS: [&str; 4] = ["acme", "b-co", "c-co", "d-co"];

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (
            proptest::collection::vec(0..SLUGS.len(), 1..4),
            proptest::option::of(1i64..50),
            proptest::array::uniform32(any::<u8>()),
            any::<u64>(),
        )
            .prop_map(|(tenants, expires_in, head, tail)| {
                let mut seed = [0u8; RANDOM_BYTES];
                seed[..32].copy_from_slice(&head);
                seed[32..].copy_from_slice(&tail.to_le_bytes());
                Op::Create {
                    tenants,
                    expires_in,
                    seed,
                }
            }),
        (0usize..16).prop_map(Op::Revoke),
        (0i64..30).prop_map(Op::Wait),
    ]
}

struct Issued {
    key: String,
    tenants: Vec<String>,
    expires_at: Option<i64>,
    revoked: bool,
}

proptest! {
    /// Any sequence of creates, revocations and waiting: after every step each key issued
    /// authenticates exactly when it is neither revoked nor expired, with exactly the
    /// scope it was issued; a key's secret under another key's id never does; no list
    /// shows a key or its hash.
    #[test]
    fn a_revoked_or_expired_key_never_authenticates(ops in proptest::collection::vec(op(), 1..40)) {
        let mut db = MemSql::new();
        let mut keys = Keys::open(&mut db).unwrap();
        let mut now = 1_000i64;
        let mut issued: Vec<Issued> = Vec::new();
        for op in ops {
            match op {
                Op::Create { tenants, expires_in, seed } => {
                    let names: Vec<&str> = tenants.iter().map(|&i| SLUGS[i]).collect();
                    let req = create(&names, expires_in.map(|d| now + d));
                    let body = serde_json::to_vec(&req).unwrap();
                    let req = CreateKey::parse(&body, now).unwrap();
                    if let Some(k) = keys.create(&req, &seed, now).unwrap() {
                        issued.push(Issued {
                            key: k.key,
                            tenants: req.tenants,
                            expires_at: req.expires_at,
                            revoked: false,
                        });
                    }
                }
                Op::Revoke(i) => {
                    if let Some(k) = issued.get_mut(i) {
                        let id = parse_key(&k.key).unwrap();
                        prop_assert!(keys.revoke(&id, now).unwrap().is_some());
                        k.revoked = true;
                    }
                }
                Op::Wait(s) => now += s,
            }
            for (i, k) in issued.iter().enumerate() {
                let live = !k.revoked && k.expires_at.is_none_or(|at| now < at);
                let got = keys.authenticate(&verify(&k.key), now).unwrap();
                match got {
                    Some(g) => {
                        prop_assert!(live, "key {} authenticated while dead", i);
                        prop_assert_eq!(&g.tenants, &k.tenants);
                    }
                    None => prop_assert!(!live, "key {} refused while live", i),
                }
                if let Some(other) = issued.get(i + 1) {
                    let cross = VerifyKey { id: parse_key(&k.key).unwrap(), hash: key_hash(&other.key) };
                    prop_assert_eq!(keys.authenticate(&cross, now).unwrap(), None);
                }
            }
        }
        let listed = serde_json::to_string(&keys.list(None, 100).unwrap()).unwrap();
        for k in &issued {
            prop_assert!(!listed.contains(&k.key));
            prop_assert!(!listed.contains(&key_hash(&k.key)));
        }
    }

    /// Walking the cursor visits every key exactly once.
    #[test]
    fn key_pages_cover_everything_once(n in 0usize..30, page in 1u32..8) {
        let mut db = MemSql::new();
        let mut keys = Keys::open(&mut db).unwrap();
        let mut ids = Vec::new();
        for i in 0..n {
            let k = keys.create(&create(&["acme"], None), &random(i as u8), 1).unwrap().unwrap();
            ids.push(k.id);
        }
        ids.sort();
        let mut seen = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let p = keys.list(after.as_deref(), page).unwrap();
            prop_assert!(p.keys.len() <= page as usize);
            seen.extend(p.keys.into_iter().map(|k| k.id));
            match p.next_cursor {
                Some(c) => after = Some(c),
                None => break,
            }
        }
        prop_assert_eq!(seen, ids);
    }
}

#[test]
fn the_object_routes() {
    let mut db = MemSql::new();
    let mut seed = 0u8;
    let mut draw = || {
        seed += 1;
        random(seed)
    };
    let mut call = |method: &str, segs: &[&str], body: &str, now: i64| {
        handle(&mut db, method, segs, &[], body.as_bytes(), now, &mut draw)
    };
    let (status, created) =
        call("POST", &["keys"], r#"{"tenants":["acme"],"label":"l"}"#, 10).unwrap();
    assert_eq!(status, 201);
    let key = created["key"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["tenants"], serde_json::json!(["acme"]));
    assert_eq!(created["expiresAt"], serde_json::Value::Null);

    let presented = serde_json::to_string(&verify(&key)).unwrap();
    let (status, grant) = call("POST", &["keys", "verify"], &presented, 11).unwrap();
    assert_eq!(
        (status, &grant["tenants"]),
        (200, &serde_json::json!(["acme"]))
    );

    let (status, list) = call("GET", &["keys"], "", 11).unwrap();
    assert_eq!(status, 200);
    assert!(!list.to_string().contains(&key));
    assert_eq!(list["keys"][0]["prefix"], created["prefix"]);

    let (status, revoked) = call("DELETE", &["keys", &id], "", 12).unwrap();
    assert_eq!((status, revoked["revokedAt"].as_i64()), (200, Some(12)));
    let refused = call("POST", &["keys", "verify"], &presented, 12).unwrap_err();
    assert_eq!(refused.code, Code::Unauthorized);

    for (method, segs, body, code) in [
        (
            "DELETE",
            &["keys", "ck_0000000000000000"][..],
            "",
            Code::KeyNotFound,
        ),
        ("DELETE", &["keys", "nope"][..], "", Code::KeyNotFound),
        ("POST", &["keys", "verify"][..], "{}", Code::InvalidBody),
        (
            "POST",
            &["keys"][..],
            r#"{"tenants":[]}"#,
            Code::InvalidField,
        ),
        ("PUT", &["keys"][..], "", Code::RouteNotFound),
    ] {
        assert_eq!(
            call(method, segs, body, 13).unwrap_err().code,
            code,
            "{method} {segs:?}"
        );
    }
}
