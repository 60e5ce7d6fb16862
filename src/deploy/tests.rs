use super::multipart::{build, OutPart};
use super::*;

const META: &str = r#"{"main_module":"index.js","compatibility_date":"2026-04-20"}"#;
const JS: &str = "application/javascript+module";

/// A part to upload: name, content type, bytes.
type P<'a> = (&'a str, &'a str, &'a [u8]);

fn upload(parts: &[(&str, &str, &[u8])]) -> (String, Vec<u8>) {
    let out: Vec<OutPart<'_>> = parts
        .iter()
        .map(|(name, ct, body)| OutPart {
            name,
            content_type: ct,
            body,
        })
        .collect();
    build(&out, "test")
}

fn function(parts: &[(&str, &str, &[u8])]) -> Result<Upload, Problem> {
    let (ct, body) = upload(parts);
    let (meta, parts) = read_upload(Some(&ct), &body)?;
    validate_function(meta, parts)
}

fn field_of(r: Result<Upload, Problem>) -> (u16, String, String) {
    let p = r.unwrap_err();
    (p.status, p.code.to_string(), p.field.unwrap_or_default())
}

#[test]
fn a_function_upload_is_read_and_hashed() {
    let u = function(&[
        ("metadata", "application/json", META.as_bytes()),
        ("index.js", JS, b"import d from './lib/data.json'; export default { fetch() { return new Response('hi') } }"),
        ("lib/data.json", "application/json; charset=utf-8", b"{\"a\":1}"),
    ])
    .unwrap();
    assert_eq!(u.modules.len(), 2);
    assert_eq!(u.modules[1].kind, ModuleType::Json);
    let d = u.draft();
    assert_eq!(d.size, u.size());
    assert_eq!(d.main_module, "index.js");
    assert_eq!(d.hash.len(), 64);
    assert_eq!(d.modules[1].kind, "application/json");
    // The same upload, another framing: the same hash. Other bytes: another hash.
    let again = function(&[
        ("index.js", JS, b"import d from './lib/data.json'; export default { fetch() { return new Response('hi') } }"),
        ("metadata", "application/json", META.as_bytes()),
        ("lib/data.json", "application/json", b"{\"a\":1}"),
    ])
    .unwrap();
    assert_eq!(again.hash(), d.hash);
    let other = function(&[
        ("metadata", "application/json", META.as_bytes()),
        ("index.js", JS, b"export default {}"),
    ])
    .unwrap();
    assert_ne!(other.hash(), d.hash);
}

#[test]
fn every_broken_upload_names_what_is_wrong() {
    let meta = ("metadata", "application/json", META.as_bytes());
    let js = ("index.js", JS, b"export default {}".as_slice());
    let cases: Vec<(Vec<P<'_>>, u16, &str, &str)> = vec![
        (vec![js], 400, "deployment_invalid", "metadata"),
        (vec![meta], 400, "deployment_invalid", "modules"),
        (
            vec![meta, ("other.js", JS, b"export default {}")],
            400,
            "deployment_invalid",
            "metadata.main_module",
        ),
        (
            vec![meta, ("index.js", "text/plain", b"export default {}")],
            400,
            "deployment_invalid",
            "metadata.main_module",
        ),
        (
            vec![meta, js, ("x.py", "text/x-python", b"print(1)")],
            400,
            "deployment_invalid",
            "modules.x.py",
        ),
        (vec![meta, js, ("../x.js", JS, b"")], 400, "deployment_invalid", "modules"),
        (vec![meta, js, ("__claw_policy.js", JS, b"")], 400, "deployment_invalid", "modules"),
        (vec![meta, js, ("index.js", JS, b"")], 400, "deployment_invalid", "modules"),
        (vec![meta, js, ("d.json", "application/json", b"{")], 400, "deployment_invalid", "modules.d.json"),
        (vec![meta, js, ("m.wasm", "application/wasm", b"nope")], 400, "deployment_invalid", "modules.m.wasm"),
        (vec![meta, ("index.js", JS, &[0xff, 0xfe])], 400, "deployment_invalid", "modules.index.js"),
        (
            vec![("metadata", "application/json", br#"{"main_module":"index.js","compatibility_date":"2026-04-20","bindings":[]}"#), js],
            400,
            "deployment_invalid",
            "metadata",
        ),
        (
            vec![("metadata", "application/json", br#"{"main_module":"index.js","compatibility_date":"today"}"#), js],
            400,
            "deployment_invalid",
            "metadata.compatibility_date",
        ),
    ];
    for (parts, status, code, field) in cases {
        let names: Vec<&str> = parts.iter().map(|p| p.0).collect();
        assert_eq!(
            field_of(function(&parts)),
            (status, code.to_owned(), field.to_owned()),
            "{names:?}"
        );
    }
}

#[test]
fn size_and_count_bounds() {
    let meta = ("metadata", "application/json", META.as_bytes());
    let js = ("index.js", JS, b"export default {}".as_slice());
    let big = vec![b'a'; MAX_MODULE_BYTES + 1];
    assert_eq!(
        field_of(function(&[meta, js, ("big.txt", "text/plain", &big)])),
        (413, "deployment_too_large".into(), "modules.big.txt".into())
    );
    let chunk = vec![b'a'; MAX_MODULE_BYTES];
    assert_eq!(
        field_of(function(&[
            meta,
            js,
            ("a.txt", "text/plain", &chunk),
            ("b.txt", "text/plain", &chunk)
        ])),
        (413, "deployment_too_large".into(), "modules".into())
    );
    let names: Vec<String> = (0..MAX_MODULES).map(|i| format!("m{i}.txt")).collect();
    let mut parts = vec![meta, js];
    parts.extend(
        names
            .iter()
            .map(|n| (n.as_str(), "text/plain", b"x".as_slice())),
    );
    assert_eq!(field_of(function(&parts)).2, "modules");
}

#[test]
fn the_policy_wrapper_imports_the_entry_and_carries_the_policy() {
    let policy = Policy {
        max_duration_ms: 1234,
        expose_env: vec!["API_KEY".into()],
    };
    let w = policy_wrapper("src/main.js", &policy);
    assert!(w.contains(r#"import tenant from "./src/main.js";"#));
    assert!(w.contains(r#"const EXPOSE_ENV = ["API_KEY"];"#));
    assert!(w.contains("const MAX_DURATION_MS = 1234;"));
    assert!(w.contains("tenant_timeout"));
    assert!(
        w.contains("throw new Error(\"the main module's default export has no fetch handler\")")
    );
}

#[test]
fn bundles_carry_tags_keep_bindings_and_the_wrapper_as_entry() {
    let u = function(&[
        ("metadata", "application/json", r#"{"main_module":"index.js","compatibility_date":"2026-04-20","compatibility_flags":["nodejs_compat"]}"#.as_bytes()),
        ("index.js", JS, b"export default {}"),
    ])
    .unwrap();
    let policy = Policy {
        max_duration_ms: 5000,
        expose_env: vec![],
    };
    let b = function_bundle("acme", &u, &policy);
    let parts = multipart::parse(&b.body, &multipart::boundary(&b.content_type).unwrap()).unwrap();
    let names: Vec<&str> = parts.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["metadata", POLICY_MODULE, "index.js"]);
    let meta: serde_json::Value = serde_json::from_slice(&parts[0].body).unwrap();
    assert_eq!(meta["main_module"], POLICY_MODULE);
    assert_eq!(meta["tags"], serde_json::json!(["402claw", "tenant-acme"]));
    assert_eq!(
        meta["keep_bindings"],
        serde_json::json!(["secret_text", "secret_key"])
    );
    assert_eq!(
        meta["compatibility_flags"],
        serde_json::json!(["nodejs_compat"])
    );
}

#[test]
fn a_dataset_upload_becomes_the_query_worker_and_its_table() {
    let (ct, body) = upload(&[
        (
            "metadata",
            "application/json",
            br#"{"main_module":"cities.csv","compatibility_date":"2026-04-20"}"#,
        ),
        ("cities.csv", "text/csv", b"id,name\n1,Paris\n2,Lyon\n"),
    ]);
    let (meta, parts) = read_upload(Some(&ct), &body).unwrap();
    let (u, table) = validate_dataset(meta, parts).unwrap();
    assert_eq!(table.rows.len(), 2);
    assert_eq!(u.draft().modules[0].kind, "text/csv");
    let b = dataset_bundle(
        "cities",
        &u,
        &table,
        &Policy::of(
            &TenantConfig::parse(br#"{"resourceType":"dataset","plan":"free"}"#, "cities").unwrap(),
        ),
    );
    let parts = multipart::parse(&b.body, &multipart::boundary(&b.content_type).unwrap()).unwrap();
    let names: Vec<&str> = parts.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "metadata",
            POLICY_MODULE,
            DATASET_ENGINE_MODULE,
            DATASET_DATA_MODULE
        ]
    );
    assert_eq!(parts[3].content_type.as_deref(), Some("application/json"));

    let bad = |parts: &[(&str, &str, &[u8])]| {
        let (ct, body) = upload(parts);
        let (meta, parts) = read_upload(Some(&ct), &body).unwrap();
        let p = validate_dataset(meta, parts).unwrap_err();
        (
            p.status,
            p.field.unwrap_or_default(),
            p.detail.unwrap_or_default(),
        )
    };
    let meta = (
        "metadata",
        "application/json",
        br#"{"main_module":"d.csv","compatibility_date":"2026-04-20"}"#.as_slice(),
    );
    assert_eq!(
        bad(&[meta, ("d.csv", "text/csv", b"a,b\n1\n")]).1,
        "modules.d.csv"
    );
    assert!(bad(&[meta, ("d.csv", "text/csv", b"a,b\n1\n")])
        .2
        .contains("line 2"));
    assert_eq!(
        bad(&[meta, ("d.csv", "text/plain", b"a\n1\n")]).1,
        "modules.d.csv"
    );
    assert_eq!(
        bad(&[meta, ("e.csv", "text/csv", b"a\n1\n")]).1,
        "metadata.main_module"
    );
    assert_eq!(
        bad(&[
            meta,
            ("d.csv", "text/csv", b"a\n"),
            ("x.csv", "text/csv", b"a\n")
        ])
        .1,
        "modules"
    );
    let huge = vec![b'a'; MAX_DATASET_BYTES + 1];
    assert_eq!(bad(&[meta, ("d.csv", "text/csv", &huge)]).0, 413);
}

#[test]
fn not_multipart_is_refused() {
    let p = read_upload(Some("application/json"), b"{}").unwrap_err();
    assert_eq!(
        (p.code, p.field.as_deref()),
        (Code::DeploymentInvalid, Some("content-type"))
    );
    let p = read_upload(None, b"").unwrap_err();
    assert_eq!(p.code, Code::DeploymentInvalid);
}
