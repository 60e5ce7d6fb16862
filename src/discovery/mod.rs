//! x402 discovery ("Bazaar"): what agents can learn about the platform's paid tenants.
//!
//! - [`for_call`]: the `bazaar` extension (and the resource's service metadata) a tenant's
//!   402 carries for the route being called, built from its config's `discovery`
//!   (`claw_durable::discovery`). A call to an undescribed route gets none.
//! - [`catalog`]: every active paid tenant as x402 facilitator discovery items, one per
//!   described route (`type: "http"`), one per MCP tool (`type: "mcp"`, resource `/mcp`), or
//!   one for the tenant's root when it describes nothing; each with `accepts`, `lastUpdated`,
//!   the service metadata and `quality` (7-day ranked calls and distinct payers from the
//!   trending windows, and a bound on the last counted call).
//! - [`ListQuery`] / [`SearchQuery`]: `GET /discovery/resources` (filters `type`, `payTo`,
//!   `scheme`, `network`, `extensions`; `limit`/`offset`) and `GET /discovery/search`
//!   (`query`, the same filters, `limit`/`cursor`), in `@x402/extensions`' response shapes.
//!
//! The glue (`edge`) reads the registry's paid listing and the trending signals, caches the
//! built catalog per isolate for [`CACHE_TTL_MS`], and answers with `Cache-Control`.

use std::collections::HashMap;

use claw_durable::discovery::{percent_decode_once, template_params, McpTool, RouteDescription};
use claw_durable::registry::TenantRecord;
use claw_durable::tenant::{Network, TenantConfig};
use claw_durable::trending::Signal;
use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::http::query::{invalid_query, Query};
use crate::x402::offer::OfferDiscovery;
use crate::x402::{Offer, SCHEME_EXACT};
use claw_durable::problem::Problem;

#[cfg(target_arch = "wasm32")]
pub mod edge;

/// How long an isolate reuses a built catalog (and what `Cache-Control` promises).
pub const CACHE_TTL_MS: i64 = 10_000;
pub const DEFAULT_LIMIT: u32 = 20;
pub const MAX_LIMIT: u32 = 100;
pub const MAX_OFFSET: u32 = 1_000_000;
pub const DEFAULT_SEARCH_LIMIT: u32 = 10;
pub const MAX_SEARCH_LIMIT: u32 = 50;
pub const MAX_QUERY_CHARS: usize = 256;
pub const MAX_QUERY_TERMS: usize = 8;
const SCHEMA_URI: &str = "https://json-schema.org/draft/2020-12/schema";
/// The MCP transport `/mcp` speaks.
pub const MCP_TRANSPORT: &str = "streamable-http";

/// A payment header echoes the 402's extensions: the bazaar extension (a route description
/// plus at most 4 KiB of wrapping schema) and the payment itself (2 KiB) fit, base64'd.
const _: () = assert!(
    (claw_durable::discovery::MAX_ROUTE_DESCRIPTION_BYTES + 4 * 1024 + 2 * 1024) * 4 / 3
        <= crate::x402::MAX_PAYMENT_HEADER_BYTES
);

/// Admin-time check of a discovery icon URL against the proxy's SSRF rules (no private,
/// loopback or metadata address in any spelling, not the platform's hosts; https unless
/// loopback upstreams are allowed locally): agents and indexers fetch it.
pub fn validate_icon(
    config: &TenantConfig,
    policy: &crate::proxy::ssrf::SsrfPolicy,
) -> Result<(), Problem> {
    let Some(url) = config
        .discovery
        .as_ref()
        .and_then(|d| d.icon_url.as_deref())
    else {
        return Ok(());
    };
    crate::proxy::ssrf::check_upstream(url, policy)
        .map_err(|e| Problem::invalid_field("discovery.iconUrl", e.to_string()))
}

/// The 402 additions for a call of `method` on `rest` (the tenant's path), if the tenant
/// describes that route.
pub fn for_call(config: &TenantConfig, method: &str, rest: &str) -> Option<OfferDiscovery> {
    let d = config.discovery.as_ref()?;
    let path = rest.split('?').next().unwrap_or(rest);
    let (route, values) = d.routes.iter().find_map(|r| {
        let same_method = r.method == method || (method == "HEAD" && r.method == "GET");
        same_method
            .then(|| match_template(&r.route, path).map(|v| (r, v)))
            .flatten()
    })?;
    Some(OfferDiscovery {
        bazaar: http_extension(route, Some(&values)),
        service_name: d.service_name.clone(),
        tags: d.tags.clone(),
        icon_url: d.icon_url.clone(),
    })
}

/// Matches an encoded path against a route template; the path parameters' values,
/// percent-decoded, in template order.
pub fn match_template(template: &str, path: &str) -> Option<Vec<(String, String)>> {
    let t: Vec<&str> = template.split('/').collect();
    let p: Vec<&str> = path.split('/').collect();
    if t.len() != p.len() {
        return None;
    }
    let mut values = Vec::new();
    for (ts, ps) in t.iter().zip(&p) {
        match ts.strip_prefix(':') {
            Some(name) if !ps.is_empty() => {
                let v = percent_decode_once(ps).unwrap_or_else(|| (*ps).to_owned());
                values.push((name.to_owned(), v));
            }
            Some(_) => return None,
            None if ts == ps => {}
            None => return None,
        }
    }
    Some(values)
}

fn object_schema(extra: Option<&Value>) -> Value {
    let mut m = Map::new();
    m.insert("type".into(), json!("object"));
    if let Some(Value::Object(e)) = extra {
        for (k, v) in e {
            m.insert(k.clone(), v.clone());
        }
    }
    Value::Object(m)
}

fn path_params_schema(route: &RouteDescription) -> Option<Value> {
    let params = template_params(&route.route);
    if let Some(s) = &route.path_params {
        return Some(object_schema(Some(s)));
    }
    if params.is_empty() {
        return None;
    }
    let props: Map<String, Value> = params
        .iter()
        .map(|p| ((*p).to_owned(), json!({"type": "string"})))
        .collect();
    Some(json!({"type": "object", "properties": props, "required": params}))
}

fn output_parts(example: Option<&Value>) -> (Option<Value>, Option<Value>) {
    match example {
        None => (None, None),
        Some(e) => (
            Some(json!({"type": "json", "example": e})),
            Some(json!({
                "type": "object",
                "properties": {"type": {"type": "string"}, "example": {}},
                "required": ["type"],
            })),
        ),
    }
}

/// The `bazaar` extension of an HTTP route: `info` (what a call looks like) and the JSON
/// Schema `info` satisfies; `path_values` are the call's path parameters, when there is a call.
pub fn http_extension(route: &RouteDescription, path_values: Option<&[(String, String)]>) -> Value {
    let mut input = Map::new();
    let mut props = Map::new();
    let mut required = vec![json!("type"), json!("method")];
    input.insert("type".into(), json!("http"));
    input.insert("method".into(), json!(route.method));
    props.insert("type".into(), json!({"type": "string", "const": "http"}));
    props.insert(
        "method".into(),
        json!({"type": "string", "enum": [route.method]}),
    );
    if route.is_body_method() {
        let body_type = route.body_type.map(|b| b.as_str()).unwrap_or("json");
        input.insert("bodyType".into(), json!(body_type));
        input.insert(
            "body".into(),
            route.example.clone().unwrap_or_else(|| json!({})),
        );
        props.insert(
            "bodyType".into(),
            json!({"type": "string", "enum": [body_type]}),
        );
        props.insert(
            "body".into(),
            route.body.clone().unwrap_or_else(|| json!({})),
        );
        required.extend([json!("bodyType"), json!("body")]);
    } else {
        if let Some(e) = &route.example {
            input.insert("queryParams".into(), e.clone());
        }
        props.insert("queryParams".into(), object_schema(route.query.as_ref()));
    }
    if let Some(schema) = path_params_schema(route) {
        if let Some(values) = path_values.filter(|v| !v.is_empty()) {
            let m: Map<String, Value> = values.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
            input.insert("pathParams".into(), Value::Object(m));
        }
        props.insert("pathParams".into(), schema);
    }
    let (output, output_schema) = output_parts(route.output_example.as_ref());
    let mut info = json!({ "input": input });
    let mut schema_props = json!({
        "input": {
            "type": "object",
            "properties": props,
            "required": required,
            "additionalProperties": false,
        }
    });
    if let (Some(o), Some(s)) = (output, output_schema) {
        info["output"] = o;
        schema_props["output"] = s;
    }
    let mut ext = json!({
        "info": info,
        "schema": {
            "$schema": SCHEMA_URI,
            "type": "object",
            "properties": schema_props,
            "required": ["input"],
        },
    });
    if !template_params(&route.route).is_empty() {
        ext["routeTemplate"] = json!(route.route);
    }
    ext
}

/// The `bazaar` extension of an MCP tool, under its platform name (`crate::mcp`).
pub fn mcp_extension(tool: &McpTool, qualified_name: &str) -> Value {
    let mut input = json!({
        "type": "mcp",
        "toolName": qualified_name,
        "transport": MCP_TRANSPORT,
        "inputSchema": tool.input_schema,
    });
    let mut props = json!({
        "type": {"type": "string", "const": "mcp"},
        "toolName": {"type": "string"},
        "transport": {"type": "string", "enum": [MCP_TRANSPORT]},
        "inputSchema": {"type": "object"},
    });
    if let Some(d) = &tool.description {
        input["description"] = json!(d);
        props["description"] = json!({"type": "string"});
    }
    json!({
        "info": { "input": input },
        "schema": {
            "$schema": SCHEMA_URI,
            "type": "object",
            "properties": {
                "input": {
                    "type": "object",
                    "properties": props,
                    "required": ["type", "toolName", "inputSchema"],
                    "additionalProperties": false,
                }
            },
            "required": ["input"],
        },
    })
}

/// A discovery item with what the filters and the search look at.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub kind: &'static str,
    pub slug: String,
    /// Lowercase `0x...`.
    pub pay_to: String,
    /// CAIP-2.
    pub network: &'static str,
    pub extensions: Vec<String>,
    /// Lowercase text the search matches terms against.
    pub haystack: String,
    pub calls: u64,
    pub item: Value,
}

/// `2026-12-01T15:38:19.123Z` for a Unix time in milliseconds (proleptic Gregorian, UTC).
pub fn iso8601_ms(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let rem = ms.rem_euclid(86_400_000);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1_000 % 60,
        rem % 1_000
    )
}

fn quality(signal: Option<&Signal>) -> Value {
    let mut q = json!({
        "l7DaysTotalCalls": signal.map_or(0, |s| s.calls),
        "l7DaysUniquePayers": signal.map_or(0, |s| s.payers),
    });
    if let Some(ms) = signal.and_then(|s| s.last_called_ms) {
        q["lastCalledAt"] = json!(iso8601_ms(ms));
    }
    q
}

/// The platform name of a tenant's tool: `{slug}__{name}` (a slug never holds `_`, so the
/// first `__` ends it; the free tools have no `__`).
pub fn qualified_tool_name(slug: &str, name: &str) -> String {
    format!("{slug}__{name}")
}

/// The catalog of `records` (active paid tenants) as seen from `origin`
/// (`https://host`), in slug order, each tenant's routes then tools in config order.
pub fn catalog(
    origin: &str,
    records: &[TenantRecord],
    signals: &HashMap<String, Signal>,
) -> Vec<Entry> {
    let mut out = Vec::new();
    for rec in records {
        let c = &rec.config;
        let Some(price) = &c.price else { continue };
        let base = format!("{origin}/t/{}", c.slug);
        let Ok(offer) = Offer::from_price(price, &format!("{base}/"), "") else {
            continue;
        };
        let signal = signals.get(&c.slug);
        let d = c.discovery.as_ref();
        let common = |resource: String, kind: &'static str, description: Option<&str>| {
            let mut item = json!({
                "resource": resource,
                "type": kind,
                "x402Version": 2,
                "accepts": [offer.requirements_v2()],
                "lastUpdated": iso8601_ms(rec.updated_at_ms),
                "quality": quality(signal),
            });
            let description = description
                .or_else(|| d.and_then(|d| d.description.as_deref()))
                .or(price.description.as_deref());
            if let Some(text) = description {
                item["description"] = json!(text);
            }
            if let Some(d) = d {
                if let Some(n) = &d.service_name {
                    item["serviceName"] = json!(n);
                }
                if !d.tags.is_empty() {
                    item["tags"] = json!(d.tags);
                }
                if let Some(u) = &d.icon_url {
                    item["iconUrl"] = json!(u);
                }
            }
            item
        };
        let mut head = vec![c.slug.clone()];
        if let Some(d) = d {
            head.extend(d.service_name.clone());
            head.extend(d.description.clone());
            head.extend(d.tags.iter().cloned());
        }
        head.extend(price.description.clone());
        let mut push = |item: Value, kind: &'static str, bazaar: bool, more: Vec<String>| {
            let mut words = head.clone();
            words.extend(more);
            out.push(Entry {
                kind,
                slug: c.slug.clone(),
                pay_to: price.pay_to.to_ascii_lowercase(),
                network: price.network.caip2(),
                extensions: if bazaar {
                    vec!["bazaar".into()]
                } else {
                    Vec::new()
                },
                haystack: words.join("\n").to_lowercase(),
                calls: signal.map_or(0, |s| s.calls),
                item,
            });
        };
        let routes = d.map(|d| d.routes.as_slice()).unwrap_or_default();
        for r in routes {
            let mut item = common(
                format!("{base}{}", r.route),
                "http",
                r.description.as_deref(),
            );
            item["extensions"] = json!({ "bazaar": http_extension(r, None) });
            let more = [
                Some(r.route.clone()),
                Some(r.method.clone()),
                r.description.clone(),
            ];
            push(item, "http", true, more.into_iter().flatten().collect());
        }
        if routes.is_empty() {
            push(
                common(format!("{base}/"), "http", None),
                "http",
                false,
                Vec::new(),
            );
        }
        for t in &c.mcp_tools {
            let name = qualified_tool_name(&c.slug, &t.name);
            let mut item = common(format!("{origin}/mcp"), "mcp", t.description.as_deref());
            item["extensions"] = json!({ "bazaar": mcp_extension(t, &name) });
            let more = [Some(name), t.description.clone()];
            push(item, "mcp", true, more.into_iter().flatten().collect());
        }
    }
    out
}

/// The filters both discovery routes take.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filters {
    pub kind: Option<String>,
    pub pay_to: Option<String>,
    pub scheme: Option<String>,
    pub network: Option<&'static str>,
    pub extensions: Vec<String>,
}

impl Filters {
    fn parse(q: &Query) -> Result<Filters, Problem> {
        let kind = match q.last("type") {
            None | Some("") => None,
            Some(t @ ("http" | "mcp")) => Some(t.to_owned()),
            Some(_) => return Err(invalid_query("type", "must be http or mcp")),
        };
        let pay_to = match q.last("payTo").filter(|s| !s.is_empty()) {
            None => None,
            Some(a) => Some(
                claw_durable::tenant::parse_evm_address(a)
                    .map_err(|e| invalid_query("payTo", format!("payTo {e}")))?,
            ),
        };
        let network = match q.last("network").filter(|s| !s.is_empty()) {
            None => None,
            Some(n) => Some(
                Network::parse(n)
                    .map(Network::caip2)
                    .ok_or_else(|| invalid_query("network", "unknown network"))?,
            ),
        };
        let extensions = q
            .last("extensions")
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .take(8)
            .map(str::to_owned)
            .collect();
        Ok(Filters {
            kind,
            pay_to,
            scheme: q
                .last("scheme")
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
            network,
            extensions,
        })
    }

    fn admits(&self, e: &Entry) -> bool {
        self.kind.as_deref().is_none_or(|k| k == e.kind)
            && self.pay_to.as_deref().is_none_or(|p| p == e.pay_to)
            && self.scheme.as_deref().is_none_or(|s| s == SCHEME_EXACT)
            && self.network.is_none_or(|n| n == e.network)
            && self.extensions.iter().all(|x| e.extensions.contains(x))
    }
}

/// `GET /discovery/resources`.
#[derive(Debug, Clone, PartialEq)]
pub struct ListQuery {
    pub filters: Filters,
    pub limit: u32,
    pub offset: u32,
}

impl ListQuery {
    pub fn parse(query: Option<&str>) -> Result<ListQuery, Problem> {
        let q = Query::parse(query);
        Ok(ListQuery {
            filters: Filters::parse(&q)?,
            limit: q
                .int("limit", 1..=MAX_LIMIT, "limit must be 1 to 100")?
                .unwrap_or(DEFAULT_LIMIT),
            offset: q
                .int("offset", 0..=MAX_OFFSET, "offset must be 0 to 1000000")?
                .unwrap_or(0),
        })
    }

    /// The page: `{x402Version, items, pagination: {limit, offset, total}}`, borrowing the
    /// catalog's items (serialized as they are, never copied).
    pub fn answer<'c>(&self, catalog: &'c [Entry]) -> ListPage<'c> {
        let matching: Vec<&Entry> = catalog.iter().filter(|e| self.filters.admits(e)).collect();
        let items = matching
            .iter()
            .skip(self.offset as usize)
            .take(self.limit as usize)
            .map(|e| &e.item)
            .collect();
        ListPage {
            x402_version: 2,
            items,
            pagination: ListPagination {
                limit: self.limit,
                offset: self.offset,
                total: matching.len(),
            },
        }
    }
}

/// `GET /discovery/resources`'s answer (`DiscoveryResourcesResponse`).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListPage<'c> {
    pub x402_version: u8,
    pub items: Vec<&'c Value>,
    pub pagination: ListPagination,
}

#[derive(Debug, Serialize)]
pub struct ListPagination {
    pub limit: u32,
    pub offset: u32,
    pub total: usize,
}

/// `GET /discovery/search`'s answer (`SearchDiscoveryResourcesResponse`).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchPage<'c> {
    pub x402_version: u8,
    pub resources: Vec<&'c Value>,
    pub partial_results: bool,
    pub pagination: SearchPagination,
}

#[derive(Debug, Serialize)]
pub struct SearchPagination {
    pub limit: u32,
    /// The next page's cursor; `null` on the last page.
    pub cursor: Option<String>,
}

/// `GET /discovery/search`.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchQuery {
    pub terms: Vec<String>,
    pub filters: Filters,
    pub limit: u32,
    pub offset: usize,
}

impl SearchQuery {
    pub fn parse(query: Option<&str>) -> Result<SearchQuery, Problem> {
        let q = Query::parse(query);
        let text = q.last("query").unwrap_or("").trim();
        if text.is_empty() || text.chars().count() > MAX_QUERY_CHARS {
            return Err(invalid_query("query", "query must be 1 to 256 characters"));
        }
        let offset = match q.last("cursor").filter(|c| !c.is_empty()) {
            None => 0,
            Some(c) => c
                .parse::<usize>()
                .ok()
                .filter(|o| *o <= MAX_OFFSET as usize)
                .ok_or_else(|| invalid_query("cursor", "not a cursor this service gave"))?,
        };
        Ok(SearchQuery {
            terms: text
                .split_whitespace()
                .take(MAX_QUERY_TERMS)
                .map(str::to_lowercase)
                .collect(),
            filters: Filters::parse(&q)?,
            limit: q
                .int("limit", 1..=MAX_SEARCH_LIMIT, "limit must be 1 to 50")?
                .unwrap_or(DEFAULT_SEARCH_LIMIT),
            offset,
        })
    }

    /// Items holding every term, most called first (ties in catalog order).
    pub fn matches<'c>(&self, catalog: &'c [Entry]) -> Vec<&'c Entry> {
        let mut hits: Vec<&Entry> = catalog
            .iter()
            .filter(|e| self.filters.admits(e))
            .filter(|e| self.terms.iter().all(|t| e.haystack.contains(t.as_str())))
            .collect();
        hits.sort_by_key(|e| std::cmp::Reverse(e.calls));
        hits
    }

    /// `{x402Version, resources, partialResults, pagination: {limit, cursor}}`.
    pub fn answer<'c>(&self, catalog: &'c [Entry]) -> SearchPage<'c> {
        let hits = self.matches(catalog);
        let end = self.offset.saturating_add(self.limit as usize);
        let resources = hits
            .iter()
            .skip(self.offset)
            .take(self.limit as usize)
            .map(|e| &e.item)
            .collect();
        SearchPage {
            x402_version: 2,
            resources,
            partial_results: false,
            pagination: SearchPagination {
                limit: self.limit,
                cursor: (end < hits.len()).then(|| end.to_string()),
            },
        }
    }
}

#[cfg(test)]
mod tests;
