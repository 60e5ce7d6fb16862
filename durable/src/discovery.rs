//! What a tenant tells agents about its API: the discovery description (x402 `bazaar`) and
//! the MCP tools it offers, as the tenant config holds them, and their validation.
//!
//! Both are optional parts of [`crate::tenant::TenantConfig`] (`discovery`, `mcpTools`),
//! checked when a config is saved; the dispatcher builds the 402's `bazaar` extension, the
//! discovery listing and the MCP tool list from them (`src/discovery`, `src/mcp`).
//!
//! Rules (every rejection names its field):
//! - `serviceName` 1-32 printable ASCII; at most 5 `tags`, each 1-32 printable ASCII, no two
//!   equal ignoring case; `iconUrl` an http(s) URL of at most 2048 bytes without credentials
//!   (the dispatcher also applies the proxy's SSRF rules to it before saving).
//! - Route templates: `/`, or `/` then `A-Z a-z 0-9 _ / : . - ~ %`, at most 256 bytes, no
//!   `..` and no `://` once fully percent-decoded (x402's own rule), parameters
//!   `:name` with `name` = `[A-Za-z_][A-Za-z0-9_]*`, each name once.
//! - Query methods (GET, HEAD, DELETE) take a `query` schema, body methods (POST, PUT,
//!   PATCH) a `body` schema and `bodyType`; one description per (method, route).
//! - A schema is a JSON object of at most [`MAX_SCHEMA_BYTES`] and depth [`MAX_SCHEMA_DEPTH`],
//!   whose `type`s are JSON Schema types and whose `$ref`/`$id` stay inside it (`#...`),
//!   as `@x402/extensions` demands before it compiles one. An example must carry every key
//!   its schema's top-level `required` lists.
//! - MCP tools: at most [`MAX_TOOLS`], names of 1-48 of `A-Z a-z 0-9 _ -`, unique in the
//!   tenant; `inputSchema` is an object schema (`"type": "object"`); each tool maps to a
//!   method and a route template; path parameters must be properties of its input schema.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::problem::Problem;

pub const MAX_SERVICE_NAME_CHARS: usize = 32;
pub const MAX_TAGS: usize = 5;
pub const MAX_TAG_CHARS: usize = 32;
pub const MAX_ICON_URL_BYTES: usize = 2048;
pub const MAX_DESCRIPTION_CHARS: usize = 512;
pub const MAX_ROUTES: usize = 16;
pub const MAX_TOOLS: usize = 16;
pub const MAX_TOOL_NAME_CHARS: usize = 48;
pub const MAX_ROUTE_TEMPLATE_BYTES: usize = 256;
/// One schema or example, serialized.
pub const MAX_SCHEMA_BYTES: usize = 4 * 1024;
pub const MAX_SCHEMA_DEPTH: usize = 16;
/// One route's whole description, serialized. x402 clients echo the 402's `bazaar`
/// extension (built from it) in their payment header, so it bounds that header's growth.
pub const MAX_ROUTE_DESCRIPTION_BYTES: usize = 6 * 1024;
const _: () = assert!(MAX_ROUTE_TEMPLATE_BYTES <= MAX_SCHEMA_BYTES);

/// HTTP methods whose input is the query string (x402 bazaar's `QueryParamMethods`).
pub const QUERY_METHODS: &[&str] = &["GET", "HEAD", "DELETE"];
/// HTTP methods whose input is a body (x402 bazaar's `BodyMethods`).
pub const BODY_METHODS: &[&str] = &["POST", "PUT", "PATCH"];

/// The tenant's discovery description.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Discovery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icon_url: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<RouteDescription>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BodyType {
    Json,
    FormData,
    Text,
}

impl BodyType {
    pub fn as_str(self) -> &'static str {
        match self {
            BodyType::Json => "json",
            BodyType::FormData => "form-data",
            BodyType::Text => "text",
        }
    }
}

/// One route of the tenant's API as agents see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteDescription {
    /// `/forecast/:city`: the path the tenant sees.
    pub route: String,
    pub method: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// JSON Schema of the query parameters (query methods).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<Value>,
    /// JSON Schema of the body (body methods).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_type: Option<BodyType>,
    /// JSON Schema of the path parameters; derived from the template when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_params: Option<Value>,
    /// An example input (query parameters or body) that satisfies its schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub example: Option<Value>,
    /// An example of the answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_example: Option<Value>,
}

/// One MCP tool a tenant offers: a name for one of its routes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct McpTool {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub input_schema: Value,
    pub route: String,
    pub method: String,
}

impl RouteDescription {
    pub fn is_body_method(&self) -> bool {
        BODY_METHODS.contains(&self.method.as_str())
    }
}

fn printable(s: &str) -> bool {
    s.bytes().all(|b| (0x20..=0x7e).contains(&b))
}

fn check_text(field: &str, s: &str, max_chars: usize) -> Result<(), Problem> {
    let n = s.chars().count();
    if n == 0 || n > max_chars || s.chars().any(char::is_control) {
        return Err(Problem::invalid_field(
            field,
            format!("must be 1 to {max_chars} characters without control characters"),
        ));
    }
    Ok(())
}

/// Fully percent-decodes `s` (at most 5 passes, as x402 does); `None` for a malformed or
/// endlessly nested encoding.
fn fully_decoded(s: &str) -> Option<String> {
    let mut cur = s.to_owned();
    for _ in 0..5 {
        let next = percent_decode_once(&cur)?;
        if next == cur {
            return Some(cur);
        }
        cur = next;
    }
    None
}

/// One pass of percent-decoding; `None` for a malformed escape or bytes that are not UTF-8.
pub fn percent_decode_once(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The parameter names of a route template (`:name` segments), in order.
pub fn template_params(template: &str) -> Vec<&str> {
    template
        .split('/')
        .filter_map(|seg| seg.strip_prefix(':'))
        .collect()
}

fn is_param_name(s: &str) -> bool {
    let mut b = s.bytes();
    b.next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

/// Checks a route template (see the module rules).
pub fn validate_route_template(t: &str) -> Result<(), String> {
    if t.len() > MAX_ROUTE_TEMPLATE_BYTES {
        return Err(format!("must be at most {MAX_ROUTE_TEMPLATE_BYTES} bytes"));
    }
    if t == "/" {
        return Ok(());
    }
    let ok_chars = t.len() > 1
        && t.starts_with('/')
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_/:.-~%".contains(&b));
    if !ok_chars {
        return Err("must start with / and hold only A-Z a-z 0-9 _ / : . - ~ %".into());
    }
    let decoded = fully_decoded(t).ok_or("has a malformed percent-encoding")?;
    if decoded.contains("..") || decoded.contains("://") {
        return Err("must not contain '..' or '://' (percent-decoded too)".into());
    }
    let mut seen: Vec<&str> = Vec::new();
    for seg in t.split('/') {
        if seg.contains(':') {
            let name = seg
                .strip_prefix(':')
                .filter(|n| is_param_name(n))
                .ok_or("parameters are whole segments :name (A-Z a-z 0-9 _)")?;
            if seen.contains(&name) {
                return Err(format!("names the parameter {name:?} twice"));
            }
            seen.push(name);
        }
    }
    Ok(())
}

/// Checks a JSON Schema (or an example, with `schema = false`): an object (schemas), at most
/// [`MAX_SCHEMA_BYTES`] serialized, at most [`MAX_SCHEMA_DEPTH`] deep; schemas' `$ref`/`$id`
/// point inside the document and their `type`s are JSON Schema types.
pub fn validate_schema(field: &str, v: &Value, schema: bool) -> Result<(), Problem> {
    if schema && !v.is_object() {
        return Err(Problem::invalid_field(
            field,
            "must be a JSON Schema object",
        ));
    }
    let size = serde_json::to_vec(v).map(|b| b.len()).unwrap_or(usize::MAX);
    if size > MAX_SCHEMA_BYTES {
        return Err(Problem::invalid_field(
            field,
            format!("must be at most {MAX_SCHEMA_BYTES} bytes"),
        ));
    }
    walk(field, v, 0, schema)
}

const JSON_TYPES: &[&str] = &[
    "object", "array", "string", "number", "integer", "boolean", "null",
];

fn walk(field: &str, v: &Value, depth: usize, schema: bool) -> Result<(), Problem> {
    if depth > MAX_SCHEMA_DEPTH {
        return Err(Problem::invalid_field(
            field,
            format!("must be at most {MAX_SCHEMA_DEPTH} levels deep"),
        ));
    }
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                if schema && (k == "$ref" || k == "$id") {
                    let internal = child.as_str().is_some_and(|s| s.starts_with('#'));
                    if !internal {
                        return Err(Problem::invalid_field(
                            field,
                            "must not reference other documents ($ref/$id outside #)",
                        ));
                    }
                }
                if schema && k == "type" {
                    let known = |t: &Value| t.as_str().is_some_and(|s| JSON_TYPES.contains(&s));
                    let ok = match child {
                        Value::Array(ts) => !ts.is_empty() && ts.iter().all(known),
                        t => known(t),
                    };
                    // A property literally named "type" is an object schema, not a type.
                    if !ok && !child.is_object() {
                        return Err(Problem::invalid_field(
                            field,
                            "has a \"type\" that is not a JSON Schema type",
                        ));
                    }
                }
                walk(field, child, depth + 1, schema)?;
            }
            Ok(())
        }
        Value::Array(items) => items
            .iter()
            .try_for_each(|c| walk(field, c, depth + 1, schema)),
        _ => Ok(()),
    }
}

/// The top-level `required` keys of a schema.
fn required_keys(schema: &Value) -> Vec<&str> {
    schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn validate_example(field: &str, example: &Value, schema: Option<&Value>) -> Result<(), Problem> {
    validate_schema(field, example, false)?;
    if let Some(schema) = schema {
        let missing = required_keys(schema)
            .into_iter()
            .find(|k| example.get(k).is_none());
        if let Some(k) = missing {
            return Err(Problem::invalid_field(
                field,
                format!("lacks {k:?}, which its schema requires"),
            ));
        }
    }
    Ok(())
}

fn check_method(field: &str, m: &mut String) -> Result<(), Problem> {
    *m = m.to_ascii_uppercase();
    if QUERY_METHODS.contains(&m.as_str()) || BODY_METHODS.contains(&m.as_str()) {
        Ok(())
    } else {
        Err(Problem::invalid_field(
            field,
            "must be GET, HEAD, DELETE, POST, PUT or PATCH",
        ))
    }
}

/// The checks the config grammar can make on an icon URL; the dispatcher adds its SSRF rules.
fn check_icon_url(url: &str) -> Result<(), Problem> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    let host = rest.map(|r| r.split(['/', '?', '#']).next().unwrap_or(""));
    let ok = url.len() <= MAX_ICON_URL_BYTES
        && url.bytes().all(|b| b.is_ascii_graphic())
        && host.is_some_and(|h| !h.is_empty() && !h.contains('@'));
    if ok {
        Ok(())
    } else {
        Err(Problem::invalid_field(
            "discovery.iconUrl",
            "must be an http(s) URL of at most 2048 printable bytes, with a host and no credentials",
        ))
    }
}

impl Discovery {
    pub fn validate(&mut self) -> Result<(), Problem> {
        if let Some(n) = &self.service_name {
            let ok = !n.is_empty() && n.len() <= MAX_SERVICE_NAME_CHARS && printable(n);
            if !ok {
                return Err(Problem::invalid_field(
                    "discovery.serviceName",
                    "must be 1 to 32 printable ASCII characters",
                ));
            }
        }
        if let Some(d) = &self.description {
            check_text("discovery.description", d, MAX_DESCRIPTION_CHARS)?;
        }
        if self.tags.len() > MAX_TAGS {
            return Err(Problem::invalid_field("discovery.tags", "at most 5 tags"));
        }
        for (i, t) in self.tags.iter().enumerate() {
            if t.is_empty() || t.len() > MAX_TAG_CHARS || !printable(t) {
                return Err(Problem::invalid_field(
                    "discovery.tags",
                    "each tag must be 1 to 32 printable ASCII characters",
                ));
            }
            if self.tags[..i].iter().any(|o| o.eq_ignore_ascii_case(t)) {
                return Err(Problem::invalid_field(
                    "discovery.tags",
                    format!("{t:?} is listed twice"),
                ));
            }
        }
        if let Some(u) = &self.icon_url {
            check_icon_url(u)?;
        }
        if self.routes.len() > MAX_ROUTES {
            return Err(Problem::invalid_field(
                "discovery.routes",
                format!("at most {MAX_ROUTES} routes"),
            ));
        }
        for i in 0..self.routes.len() {
            self.routes[i].validate()?;
            let (head, r) = self.routes.split_at(i);
            let r = &r[0];
            if head
                .iter()
                .any(|o| o.method == r.method && o.route == r.route)
            {
                return Err(Problem::invalid_field(
                    "discovery.routes.route",
                    format!("{} {} is described twice", r.method, r.route),
                ));
            }
        }
        Ok(())
    }
}

impl RouteDescription {
    fn validate(&mut self) -> Result<(), Problem> {
        validate_route_template(&self.route)
            .map_err(|e| Problem::invalid_field("discovery.routes.route", e))?;
        check_method("discovery.routes.method", &mut self.method)?;
        if let Some(d) = &self.description {
            check_text("discovery.routes.description", d, MAX_DESCRIPTION_CHARS)?;
        }
        let body_method = self.is_body_method();
        if body_method {
            if self.query.is_some() {
                return Err(Problem::invalid_field(
                    "discovery.routes.query",
                    "body methods (POST, PUT, PATCH) describe a body, not a query",
                ));
            }
            self.body_type.get_or_insert(BodyType::Json);
        } else if self.body.is_some() || self.body_type.is_some() {
            return Err(Problem::invalid_field(
                "discovery.routes.body",
                "query methods (GET, HEAD, DELETE) have no body",
            ));
        }
        let input = if body_method { &self.body } else { &self.query };
        let input_field = if body_method {
            "discovery.routes.body"
        } else {
            "discovery.routes.query"
        };
        if let Some(s) = input {
            validate_schema(input_field, s, true)?;
        }
        if let Some(p) = &self.path_params {
            validate_schema("discovery.routes.pathParams", p, true)?;
        }
        if let Some(e) = &self.example {
            validate_example("discovery.routes.example", e, input.as_ref())?;
            let text_body = body_method && self.body_type == Some(BodyType::Text);
            if !e.is_object() && !text_body {
                return Err(Problem::invalid_field(
                    "discovery.routes.example",
                    "must be an object (query parameters or a JSON body)",
                ));
            }
        } else if body_method && input.as_ref().is_some_and(|s| !required_keys(s).is_empty()) {
            return Err(Problem::invalid_field(
                "discovery.routes.example",
                "a body schema with required keys needs an example that has them",
            ));
        }
        if let Some(o) = &self.output_example {
            validate_schema("discovery.routes.outputExample", o, false)?;
        }
        let size = serde_json::to_vec(self)
            .map(|b| b.len())
            .unwrap_or(usize::MAX);
        if size > MAX_ROUTE_DESCRIPTION_BYTES {
            return Err(Problem::invalid_field(
                "discovery.routes",
                format!("a route's description is at most {MAX_ROUTE_DESCRIPTION_BYTES} bytes"),
            ));
        }
        Ok(())
    }
}

/// A tool name: 1-48 of `A-Z a-z 0-9 _ -`.
pub fn is_tool_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_TOOL_NAME_CHARS
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Checks a tenant's MCP tools.
pub fn validate_tools(tools: &mut [McpTool]) -> Result<(), Problem> {
    if tools.len() > MAX_TOOLS {
        return Err(Problem::invalid_field(
            "mcpTools",
            format!("at most {MAX_TOOLS} tools"),
        ));
    }
    for i in 0..tools.len() {
        let (head, rest) = tools.split_at_mut(i);
        let t = &mut rest[0];
        if !is_tool_name(&t.name) {
            return Err(Problem::invalid_field(
                "mcpTools.name",
                "must be 1 to 48 of A-Z a-z 0-9 _ -",
            ));
        }
        if head.iter().any(|o| o.name == t.name) {
            return Err(Problem::invalid_field(
                "mcpTools.name",
                format!("{:?} is listed twice", t.name),
            ));
        }
        if let Some(d) = &t.description {
            check_text("mcpTools.description", d, MAX_DESCRIPTION_CHARS)?;
        }
        validate_schema("mcpTools.inputSchema", &t.input_schema, true)?;
        if t.input_schema.get("type").and_then(Value::as_str) != Some("object") {
            return Err(Problem::invalid_field(
                "mcpTools.inputSchema",
                "must be an object schema (\"type\": \"object\")",
            ));
        }
        validate_route_template(&t.route)
            .map_err(|e| Problem::invalid_field("mcpTools.route", e))?;
        check_method("mcpTools.method", &mut t.method)?;
        let props = t.input_schema.get("properties");
        if let Some(p) = template_params(&t.route)
            .into_iter()
            .find(|p| props.and_then(|ps| ps.get(p)).is_none())
        {
            return Err(Problem::invalid_field(
                "mcpTools.inputSchema",
                format!("must have the path parameter {p:?} as a property"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn route(v: Value) -> Result<RouteDescription, Problem> {
        let mut r: RouteDescription = serde_json::from_value(v).expect("shape");
        r.validate().map(|()| r)
    }

    #[test]
    fn route_templates_follow_x402s_rule() {
        for ok in [
            "/",
            "/forecast",
            "/forecast/:city",
            "/a/:b/c/:d_2",
            "/x.json",
            "/%7Euser",
        ] {
            assert_eq!(validate_route_template(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "forecast",
            "/a/../b",
            "/a/%2e%2e/b",
            "/a/%252e%252e/b",
            "/http://x",
            "/a%3A%2F%2Fb",
            "/a b",
            "/a?b",
            "/a/:1x",
            "/a/x:y",
            "/a/:id/:id",
            "/%zz",
            "/%25252525252e",
        ] {
            assert!(validate_route_template(bad).is_err(), "{bad}");
        }
        assert!(validate_route_template(&format!("/{}", "a".repeat(300))).is_err());
    }

    #[test]
    fn schemas_are_bounded_and_self_contained() {
        let f = "f";
        assert!(validate_schema(f, &json!({"type": "object"}), true).is_ok());
        assert!(validate_schema(f, &json!({"type": ["string", "null"]}), true).is_ok());
        // A property named "type" is fine.
        let prop = json!({"type": "object", "properties": {"type": {"type": "string"}}});
        assert!(validate_schema(f, &prop, true).is_ok());
        assert!(validate_schema(f, &json!({"$ref": "#/$defs/a"}), true).is_ok());
        for bad in [
            json!([]),
            json!("x"),
            json!({"type": "float"}),
            json!({"$ref": "https://evil.example/s.json"}),
            json!({"properties": {"a": {"$id": "other"}}}),
            json!({"description": "x".repeat(MAX_SCHEMA_BYTES)}),
        ] {
            assert_eq!(
                validate_schema(f, &bad, true).unwrap_err().code,
                crate::problem::Code::InvalidField,
                "{bad}"
            );
        }
        let mut deep = json!({});
        for _ in 0..(MAX_SCHEMA_DEPTH + 2) {
            deep = json!({ "items": deep });
        }
        assert!(validate_schema(f, &deep, true).is_err());
    }

    #[test]
    fn routes_match_their_method_kind() {
        let r = route(json!({"route": "/q", "method": "get",
            "query": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
            "example": {"city": "Paris"}, "outputExample": {"t": 21}}))
        .unwrap();
        assert_eq!(r.method, "GET");
        let post =
            route(json!({"route": "/p", "method": "POST", "body": {"type": "object"}})).unwrap();
        assert_eq!(post.body_type, Some(BodyType::Json));
        let field = |v| route(v).unwrap_err().field.unwrap();
        assert_eq!(
            field(json!({"route": "/q", "method": "GET", "body": {}})),
            "discovery.routes.body"
        );
        assert_eq!(
            field(json!({"route": "/q", "method": "POST", "query": {}})),
            "discovery.routes.query"
        );
        assert_eq!(
            field(json!({"route": "/q", "method": "TRACE"})),
            "discovery.routes.method"
        );
        // An example must carry what its schema requires.
        assert_eq!(
            field(json!({"route": "/q", "method": "GET",
                "query": {"type": "object", "required": ["city"]}, "example": {}})),
            "discovery.routes.example"
        );
        assert_eq!(
            field(json!({"route": "/p", "method": "POST",
                "body": {"type": "object", "required": ["a"]}})),
            "discovery.routes.example"
        );
    }

    #[test]
    fn service_metadata_bounds() {
        let check = |v: Value| {
            let mut d: Discovery = serde_json::from_value(v).unwrap();
            d.validate().map_err(|p| p.field.unwrap())
        };
        assert_eq!(
            check(
                json!({"serviceName": "Weather", "tags": ["a", "b"], "iconUrl": "https://x.example/i.png"})
            ),
            Ok(())
        );
        assert_eq!(
            check(json!({"serviceName": "x".repeat(33)})),
            Err("discovery.serviceName".into())
        );
        assert_eq!(
            check(json!({"serviceName": "caf\u{e9}"})),
            Err("discovery.serviceName".into())
        );
        assert_eq!(
            check(json!({"tags": ["a", "b", "c", "d", "e", "f"]})),
            Err("discovery.tags".into())
        );
        assert_eq!(
            check(json!({"tags": ["Ab", "aB"]})),
            Err("discovery.tags".into())
        );
        for bad in [
            "ftp://x/i.png",
            "https://u:p@x/i.png",
            "https:///i",
            "javascript:alert(1)",
        ] {
            assert_eq!(
                check(json!({ "iconUrl": bad })),
                Err("discovery.iconUrl".into()),
                "{bad}"
            );
        }
        let same = json!({"route": "/a", "method": "GET"});
        assert_eq!(
            check(json!({"routes": [same.clone(), same]})),
            Err("discovery.routes.route".into())
        );
    }

    #[test]
    fn tools_are_unique_safe_and_cover_their_path_params() {
        let tool = |name: &str, route: &str, schema: Value| McpTool {
            name: name.into(),
            description: None,
            input_schema: schema,
            route: route.into(),
            method: "get".into(),
        };
        let obj = json!({"type": "object", "properties": {"city": {"type": "string"}}});
        let mut ok = vec![
            tool("forecast", "/f/:city", obj.clone()),
            tool("b-2_x", "/b", obj.clone()),
        ];
        assert_eq!(validate_tools(&mut ok), Ok(()));
        assert_eq!(ok[0].method, "GET");
        let field = |mut ts: Vec<McpTool>| validate_tools(&mut ts).unwrap_err().field.unwrap();
        assert_eq!(
            field(vec![
                tool("a", "/a", obj.clone()),
                tool("a", "/b", obj.clone())
            ]),
            "mcpTools.name"
        );
        for bad in ["", "a.b", "a b", "x__", &"n".repeat(49)] {
            if bad == "x__" {
                // Underscores are fine in a tenant's own name.
                assert!(validate_tools(&mut [tool(bad, "/a", obj.clone())]).is_ok());
                continue;
            }
            assert_eq!(
                field(vec![tool(bad, "/a", obj.clone())]),
                "mcpTools.name",
                "{bad}"
            );
        }
        assert_eq!(
            field(vec![tool("a", "/a", json!({"type": "string"}))]),
            "mcpTools.inputSchema"
        );
        assert_eq!(
            field(vec![tool("a", "/f/:day", obj.clone())]),
            "mcpTools.inputSchema"
        );
        assert_eq!(field(vec![tool("a", "/../x", obj)]), "mcpTools.route");
    }
}
