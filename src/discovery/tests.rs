use super::*;
use claw_durable::registry::TenantStatus;
use serde_json::json;

fn record(slug: &str, extra: &str, updated_at_ms: i64) -> TenantRecord {
    let body = format!(
        r#"{{"resourceType":"function","workerName":"w","plan":"pro",
        "price":{{"amountAtomic":"1000","network":"base-sepolia",
        "asset":"0x036CbD53842c5426634e7929541eC2318f3dCF7e",
        "payTo":"0x1111111111111111111111111111111111111111"}}{extra}}}"#
    );
    TenantRecord {
        config: TenantConfig::parse(body.as_bytes(), slug).unwrap(),
        status: TenantStatus::Active,
        version: 1,
        created_at_ms: 0,
        updated_at_ms,
    }
}

const WEATHER: &str = r#","discovery":{"serviceName":"Weather","tags":["weather","forecast"],
    "iconUrl":"https://icons.example.com/w.png","description":"Forecasts",
    "routes":[{"route":"/forecast/:city","method":"GET","description":"Daily forecast",
      "query":{"type":"object","properties":{"days":{"type":"integer"}}},
      "example":{"days":3},"outputExample":{"tempC":21}},
     {"route":"/report","method":"POST","body":{"type":"object","required":["text"]},
      "example":{"text":"hi"}}]},
    "mcpTools":[{"name":"forecast","description":"Forecast for a city",
      "inputSchema":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]},
      "route":"/forecast/:city","method":"GET"}]"#;

trait ToJson {
    fn to_json(&self) -> Value;
}

impl<T: serde::Serialize> ToJson for T {
    fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap()
    }
}

#[test]
fn templates_match_whole_segments() {
    assert_eq!(
        match_template("/forecast/:city", "/forecast/S%C3%A3o%20Paulo"),
        Some(vec![("city".into(), "São Paulo".into())])
    );
    assert_eq!(match_template("/forecast/:city", "/forecast/"), None);
    assert_eq!(match_template("/forecast/:city", "/forecast/a/b"), None);
    assert_eq!(match_template("/forecast", "/forecasts"), None);
    assert_eq!(match_template("/", "/"), Some(vec![]));
}

#[test]
fn a_described_route_gets_its_bazaar_extension() {
    let rec = record("weather", WEATHER, 0);
    let d = for_call(&rec.config, "GET", "/forecast/Paris").unwrap();
    assert_eq!(d.service_name.as_deref(), Some("Weather"));
    assert_eq!(d.tags, ["weather", "forecast"]);
    let b = &d.bazaar;
    assert_eq!(b["routeTemplate"], "/forecast/:city");
    assert_eq!(b["info"]["input"]["method"], "GET");
    assert_eq!(b["info"]["input"]["pathParams"], json!({"city": "Paris"}));
    assert_eq!(b["info"]["input"]["queryParams"], json!({"days": 3}));
    assert_eq!(
        b["info"]["output"],
        json!({"type": "json", "example": {"tempC": 21}})
    );
    let input = &b["schema"]["properties"]["input"];
    assert_eq!(input["properties"]["method"]["enum"], json!(["GET"]));
    assert_eq!(input["additionalProperties"], false);
    assert_eq!(
        input["properties"]["queryParams"]["properties"]["days"]["type"],
        "integer"
    );
    let post = for_call(&rec.config, "POST", "/report").unwrap().bazaar;
    assert_eq!(post["info"]["input"]["bodyType"], "json");
    assert_eq!(post["info"]["input"]["body"], json!({"text": "hi"}));
    assert!(post.get("routeTemplate").is_none());
    // Undescribed routes, other methods, undescribed tenants: nothing.
    assert!(for_call(&rec.config, "POST", "/forecast/Paris").is_none());
    assert!(for_call(&rec.config, "GET", "/other").is_none());
    assert!(for_call(&record("plain", "", 0).config, "GET", "/").is_none());
}

#[test]
fn the_catalog_lists_routes_tools_and_bare_tenants() {
    let recs = [
        record("plain", "", 86_400_000),
        record("weather", WEATHER, 0),
    ];
    let mut signals = HashMap::new();
    signals.insert(
        "weather".to_owned(),
        Signal {
            tenant: "weather".into(),
            calls: 9,
            payers: 4,
            last_called_ms: Some(1_000),
        },
    );
    let c = catalog("https://edge.example", &recs, &signals);
    let resources: Vec<(&str, &str)> = c
        .iter()
        .map(|e| (e.kind, e.item["resource"].as_str().unwrap()))
        .collect();
    assert_eq!(
        resources,
        [
            ("http", "https://edge.example/t/plain/"),
            ("http", "https://edge.example/t/weather/forecast/:city"),
            ("http", "https://edge.example/t/weather/report"),
            ("mcp", "https://edge.example/mcp"),
        ]
    );
    let plain = &c[0].item;
    assert_eq!(plain["lastUpdated"], "1970-01-02T00:00:00.000Z");
    assert!(plain.get("extensions").is_none());
    assert_eq!(
        plain["quality"],
        json!({"l7DaysTotalCalls": 0, "l7DaysUniquePayers": 0})
    );
    let w = &c[1].item;
    assert_eq!(w["accepts"][0]["amount"], "1000");
    assert_eq!(w["accepts"][0]["network"], "eip155:84532");
    assert_eq!(w["serviceName"], "Weather");
    assert_eq!(w["description"], "Daily forecast");
    assert_eq!(w["quality"]["l7DaysUniquePayers"], 4);
    assert_eq!(w["quality"]["lastCalledAt"], "1970-01-01T00:00:01.000Z");
    let tool = &c[3].item["extensions"]["bazaar"]["info"]["input"];
    assert_eq!(tool["toolName"], "weather__forecast");
    assert_eq!(tool["transport"], "streamable-http");
}

#[test]
fn lists_filter_and_page() {
    let recs = [record("plain", "", 0), record("weather", WEATHER, 0)];
    let c = catalog("https://e", &recs, &HashMap::new());
    let total = |q: &str| {
        ListQuery::parse(Some(q)).unwrap().answer(&c).to_json()["pagination"]["total"].clone()
    };
    assert_eq!(total(""), 4);
    assert_eq!(total("type=mcp"), 1);
    assert_eq!(total("extensions=bazaar"), 3);
    assert_eq!(total("network=base-sepolia"), 4);
    assert_eq!(total("network=eip155:8453"), 0);
    assert_eq!(total("scheme=exact"), 4);
    assert_eq!(total("scheme=upto"), 0);
    assert_eq!(total("payTo=0x1111111111111111111111111111111111111111"), 4);
    assert_eq!(total("payTo=0x2222222222222222222222222222222222222222"), 0);
    let page = ListQuery::parse(Some("limit=2&offset=1"))
        .unwrap()
        .answer(&c)
        .to_json();
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    assert_eq!(
        page["pagination"],
        json!({"limit": 2, "offset": 1, "total": 4})
    );
    for bad in [
        "limit=0",
        "limit=101",
        "offset=-1",
        "type=ftp",
        "payTo=0x12",
        "network=mars",
    ] {
        assert_eq!(
            ListQuery::parse(Some(bad)).unwrap_err().code.as_str(),
            "invalid_query",
            "{bad}"
        );
    }
}

#[test]
fn search_matches_every_term_most_called_first() {
    let recs = [
        record("plain", "", 0),
        record("weather", WEATHER, 0),
        record("wx", WEATHER, 0),
    ];
    let mut signals = HashMap::new();
    signals.insert(
        "wx".to_owned(),
        Signal {
            tenant: "wx".into(),
            calls: 5,
            payers: 1,
            last_called_ms: None,
        },
    );
    let c = catalog("https://e", &recs, &signals);
    let q = SearchQuery::parse(Some("query=Weather+FORECAST&limit=2")).unwrap();
    let a = q.answer(&c).to_json();
    let res = a["resources"].as_array().unwrap();
    assert_eq!(res.len(), 2);
    assert!(
        res[0]["resource"].as_str().unwrap().contains("/t/wx/"),
        "most called first"
    );
    let cursor = a["pagination"]["cursor"].as_str().unwrap().to_owned();
    let next = SearchQuery::parse(Some(&format!(
        "query=weather+forecast&limit=50&cursor={cursor}"
    )))
    .unwrap()
    .answer(&c)
    .to_json();
    assert_eq!(next["resources"].as_array().unwrap().len(), 4);
    assert_eq!(next["pagination"]["cursor"], Value::Null);
    assert!(SearchQuery::parse(Some("query=nothing-like-it"))
        .unwrap()
        .answer(&c)
        .to_json()["resources"]
        .as_array()
        .unwrap()
        .is_empty());
    for bad in ["", "query=", "query=a&cursor=x", "query=a&limit=51"] {
        assert!(SearchQuery::parse(Some(bad)).is_err(), "{bad}");
    }
}

#[test]
fn iso_dates() {
    assert_eq!(iso8601_ms(0), "1970-01-01T00:00:00.000Z");
    assert_eq!(iso8601_ms(1_795_308_901_327), "2026-11-22T00:55:01.327Z");
    assert_eq!(iso8601_ms(951_782_400_000), "2000-02-29T00:00:00.000Z");
}

#[test]
fn icon_urls_follow_the_ssrf_rules() {
    use crate::proxy::ssrf::{PlatformHosts, SsrfPolicy};
    let policy = SsrfPolicy {
        allow_loopback_http: false,
        platform: PlatformHosts::new("402claw.dev", []),
    };
    let with_icon = |u: &str| {
        let extra = format!(r#","discovery":{{"iconUrl":"{u}"}}"#);
        validate_icon(&record("icons", &extra, 0).config, &policy)
    };
    assert_eq!(with_icon("https://icons.example.com/w.png"), Ok(()));
    for bad in [
        "https://127.0.0.1/i.png",
        "https://169.254.169.254/latest",
        "https://[::1]/i.png",
        "https://10.0.0.1/i.png",
        "https://localhost/i.png",
        "https://402claw.dev/i.png",
        "http://icons.example.com/w.png",
    ] {
        let p = with_icon(bad).unwrap_err();
        assert_eq!(p.field.as_deref(), Some("discovery.iconUrl"), "{bad}");
    }
    assert_eq!(
        validate_icon(&record("none", "", 0).config, &policy),
        Ok(())
    );
}
