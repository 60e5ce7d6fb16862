use super::*;
use serde_json::json;

fn tool(route: &str, method: &str) -> McpTool {
    McpTool {
        name: "forecast".into(),
        description: Some("Weather".into()),
        input_schema: json!({"type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city"]}),
        route: route.into(),
        method: method.into(),
    }
}

#[test]
fn json_rpc_messages_are_read_strictly() {
    let req = parse(br#"{"jsonrpc":"2.0","id":7,"method":"tools/list","params":{"cursor":"50"}}"#)
        .unwrap();
    assert!(matches!(req, Incoming::Request { ref method, .. } if method == "tools/list"));
    assert_eq!(
        parse(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).unwrap(),
        Incoming::Notification {
            method: "notifications/initialized".into()
        }
    );
    assert_eq!(
        parse(br#"{"jsonrpc":"2.0","id":1,"result":{}}"#).unwrap(),
        Incoming::Response
    );
    let code = |b: &[u8]| parse(b).unwrap_err().code;
    assert_eq!(code(b"{nope"), PARSE_ERROR);
    assert_eq!(code(b"[]"), INVALID_REQUEST);
    assert_eq!(code(b"3"), INVALID_REQUEST);
    assert_eq!(code(br#"{"id":1,"method":"x"}"#), INVALID_REQUEST);
    assert_eq!(
        code(br#"{"jsonrpc":"2.0","id":1,"method":5}"#),
        INVALID_REQUEST
    );
    assert_eq!(
        code(br#"{"jsonrpc":"2.0","id":{},"method":"x"}"#),
        INVALID_REQUEST
    );
    assert_eq!(
        code(br#"{"jsonrpc":"2.0","id":1,"method":"x","params":[1]}"#),
        INVALID_PARAMS
    );
    // The id of a readable request is echoed in its error.
    assert_eq!(
        parse(br#"{"jsonrpc":"1.0","id":"a","method":"x"}"#)
            .unwrap_err()
            .id,
        json!("a")
    );
}

#[test]
fn protocol_versions_are_negotiated() {
    assert_eq!(negotiate(Some("2025-06-18")), "2025-06-18");
    assert_eq!(negotiate(Some("2024-11-05")), "2024-11-05");
    assert_eq!(negotiate(Some("1999-01-01")), PROTOCOL_VERSIONS[0]);
    assert_eq!(negotiate(None), PROTOCOL_VERSIONS[0]);
    let init = initialize_result(
        &json!({"protocolVersion": "2025-03-26"})
            .as_object()
            .unwrap()
            .clone(),
    );
    assert_eq!(init["protocolVersion"], "2025-03-26");
    assert!(init["capabilities"]["tools"].is_object());
    assert!(header_version_ok(None));
    assert!(header_version_ok(Some("2025-06-18")));
    assert!(!header_version_ok(Some("2020-01-01")));
}

#[test]
fn tool_names_split_at_the_first_double_underscore() {
    assert_eq!(
        split_tool_name("demo-paid__forecast"),
        Some(("demo-paid", "forecast"))
    );
    assert_eq!(split_tool_name("demo__a__b"), Some(("demo", "a__b")));
    assert_eq!(split_tool_name(SEARCH_TOOL), None);
    assert_eq!(split_tool_name("__x"), None);
    assert_eq!(split_tool_name("x__"), None);
}

#[test]
fn pages_are_bounded_and_resumable() {
    let tools: Vec<Value> = (0..120).map(|i| json!({"name": format!("t{i}")})).collect();
    let id = json!(1);
    let first = page(&id, &tools, None).unwrap();
    assert_eq!(first["tools"].as_array().unwrap().len(), PAGE_SIZE);
    let c = first["nextCursor"].as_str().unwrap().to_owned();
    let second = page(&id, &tools, Some(&c)).unwrap();
    assert_eq!(second["tools"][0]["name"], "t50");
    let last = page(&id, &tools, Some("100")).unwrap();
    assert_eq!(last["tools"].as_array().unwrap().len(), 20);
    assert!(last.get("nextCursor").is_none());
    assert_eq!(
        page(&id, &tools, Some("121")).unwrap_err().code,
        INVALID_PARAMS
    );
    assert_eq!(
        page(&id, &tools, Some("x")).unwrap_err().code,
        INVALID_PARAMS
    );
}

#[test]
fn arguments_are_checked_before_any_call() {
    let t = tool("/f/:city", "GET");
    let args = |v: Value| v.as_object().unwrap().clone();
    assert_eq!(
        check_arguments(&t.input_schema, &args(json!({"city": "Paris"}))),
        Ok(())
    );
    assert!(check_arguments(&t.input_schema, &args(json!({})))
        .unwrap_err()
        .contains("city"));
    assert!(check_arguments(&t.input_schema, &args(json!({"city": 3})))
        .unwrap_err()
        .contains("string"));
    assert!(check_arguments(&t.input_schema, &args(json!({"city": "x", "days": 1.5}))).is_err());
    let big = json!({"city": "x".repeat(MAX_ARGUMENTS_BYTES)});
    assert!(check_arguments(&t.input_schema, &args(big))
        .unwrap_err()
        .contains("bytes"));
}

#[test]
fn a_tool_call_becomes_the_routes_request() {
    let args = |v: Value| v.as_object().unwrap().clone();
    let get = invocation(
        &tool("/f/:city", "GET"),
        &args(json!({"city": "São Paulo/../x", "days": 3, "tags": ["a", "b"]})),
    )
    .unwrap();
    assert_eq!(get.path, "/f/S%C3%A3o%20Paulo%2F..%2Fx");
    assert_eq!(get.query.as_deref(), Some("days=3&tags=a&tags=b"));
    assert_eq!(get.body, None);
    let post = invocation(&tool("/f", "POST"), &args(json!({"city": "Paris"}))).unwrap();
    assert_eq!(post.path, "/f");
    assert_eq!(post.query, None);
    assert_eq!(
        post.body.as_deref(),
        Some(br#"{"city":"Paris"}"#.as_slice())
    );
    assert!(invocation(&tool("/f/:city", "GET"), &args(json!({}))).is_err());
    assert!(invocation(&tool("/f/:city", "GET"), &args(json!({"city": ""}))).is_err());
    assert!(invocation(&tool("/f/:city", "GET"), &args(json!({"city": {"a": 1}}))).is_err());
}

#[test]
fn payments_must_name_the_called_resource() {
    let url = "https://x.example/t/demo/f/Paris";
    let pay = json!({"x402Version": 2, "resource": {"url": url}, "accepted": {}, "payload": {}});
    let h = payment_header(&pay, url).unwrap();
    assert_eq!(decode_header(&h).unwrap(), pay);
    assert!(payment_header(&pay, "https://x.example/t/demo/f/Rome")
        .unwrap_err()
        .contains("not for this tool"));
    let v1 = json!({"x402Version": 1, "resource": {"url": url}});
    assert!(payment_header(&v1, url).is_err());
    assert!(payment_header(&json!({"x402Version": 2}), url).is_err());
    assert!(payment_header(&json!("abc"), url).is_err());
}

#[test]
fn answers_become_tool_results_and_unsettled_output_is_withheld() {
    let required = json!({"x402Version": 2, "accepts": []});
    let r = answer_result(true, 402, b"{}", Some(required.clone()), None);
    assert_eq!(r["isError"], true);
    assert_eq!(r["structuredContent"], required);
    assert_eq!(r["content"][0]["text"], required.to_string());
    let ok = json!({"success": true, "transaction": "0xab"});
    let r = answer_result(true, 200, br#"{"t":21}"#, None, Some(ok.clone()));
    assert_eq!(r["isError"], false);
    assert_eq!(r["structuredContent"], json!({"t": 21}));
    assert_eq!(r["_meta"][META_PAYMENT_RESPONSE], ok);
    // Paid, answered, but no successful receipt: the output is withheld.
    let r = answer_result(true, 200, b"secret output", None, None);
    assert_eq!(r["isError"], true);
    assert!(!r.to_string().contains("secret output"));
    let failed = json!({"success": false, "errorReason": "x"});
    let r = answer_result(true, 200, b"secret output", None, Some(failed.clone()));
    assert!(!r.to_string().contains("secret output"));
    // A failed settlement is a 402 with the failure receipt: requirements, no output.
    let r = answer_result(true, 402, b"", Some(required), Some(failed.clone()));
    assert_eq!(r["_meta"][META_PAYMENT_RESPONSE], failed);
    // A free tenant's answer needs no receipt; an error is a tool error.
    assert_eq!(
        answer_result(false, 200, b"hi", None, None)["isError"],
        false
    );
    assert_eq!(
        answer_result(false, 503, b"down", None, None)["isError"],
        true
    );
}
