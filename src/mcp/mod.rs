//! The Model Context Protocol endpoint `/mcp` (Streamable HTTP, JSON-RPC 2.0), pure rules.
//!
//! Stateless: every `POST /mcp` carries one JSON-RPC message and gets one JSON answer (no
//! session id, no server-sent stream; `GET` is 405 as the transport allows). Methods:
//! `initialize` (protocol version negotiated: the client's when supported, else our latest),
//! `notifications/initialized` and other notifications (202, no body), `ping`,
//! `tools/list` (the free tool, then every active paid tenant's tools; pages of
//! [`PAGE_SIZE`] with an opaque `cursor`), `tools/call`.
//!
//! Tools:
//! - `search_marketplace` (free): the discovery search (`crate::discovery::SearchQuery`).
//! - `{slug}__{name}`: a tenant's tool, mapped to one of its routes ([`invocation`]). The
//!   glue turns the call into an ordinary request to `/t/{slug}/{route}` (payment in
//!   `PAYMENT-SIGNATURE`, the caller's address headers copied) and hands it to the same
//!   function HTTP tenant calls go through (`crate::entry::tenant`), so limits, paywall,
//!   ledger key, settlement and usage are those of HTTP: a payment is served once, whichever
//!   way it arrives.
//!
//! x402 over MCP (the tool-result binding of x402's MCP transport): without payment a paid
//! tool answers `isError: true` with the `PaymentRequired` object in `structuredContent` and
//! as JSON text in `content[0]`; the client retries with its `PaymentPayload` in
//! `params._meta["x402/payment"]`; the receipt comes back in
//! `result._meta["x402/payment-response"]`. A refused or failed settlement never carries
//! the tool's output (the paywall does not return it either). A payment whose `resource`
//! is not the called tool's is refused before anything is charged.

use base64::Engine as _;
use serde_json::{json, Map, Value};

use claw_durable::discovery::McpTool;

#[cfg(target_arch = "wasm32")]
pub mod edge;

/// Newest first; the first is what a client asking for an unknown version gets.
pub const PROTOCOL_VERSIONS: &[&str] = &["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];
/// Largest JSON-RPC message accepted.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// Largest `arguments` of one tool call, serialized.
pub const MAX_ARGUMENTS_BYTES: usize = 16 * 1024;
pub const PAGE_SIZE: usize = 50;
/// The free tool.
pub const SEARCH_TOOL: &str = "search_marketplace";
pub const META_PAYMENT: &str = "x402/payment";
pub const META_PAYMENT_RESPONSE: &str = "x402/payment-response";

pub const PARSE_ERROR: i64 = -32700;
pub const INVALID_REQUEST: i64 = -32600;
pub const METHOD_NOT_FOUND: i64 = -32601;
pub const INVALID_PARAMS: i64 = -32602;
pub const INTERNAL_ERROR: i64 = -32603;

/// A JSON-RPC error to answer with.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcError {
    pub id: Value,
    pub code: i64,
    pub message: String,
}

impl RpcError {
    pub fn new(id: &Value, code: i64, message: impl Into<String>) -> RpcError {
        RpcError {
            id: id.clone(),
            code,
            message: message.into(),
        }
    }

    pub fn to_json(&self) -> Value {
        json!({"jsonrpc": "2.0", "id": self.id, "error": {"code": self.code, "message": self.message}})
    }
}

/// One message from the client.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    Request {
        id: Value,
        method: String,
        params: Map<String, Value>,
    },
    Notification {
        method: String,
    },
    /// A response or error from the client (this server never asks it anything).
    Response,
}

/// Reads one JSON-RPC message (batches are refused, as MCP 2025-06-18 dropped them).
pub fn parse(body: &[u8]) -> Result<Incoming, RpcError> {
    let null = Value::Null;
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| RpcError::new(&null, PARSE_ERROR, format!("not JSON: {e}")))?;
    let Value::Object(mut m) = v else {
        let msg = if v.is_array() {
            "batches are not supported: send one message per request"
        } else {
            "a JSON-RPC message is an object"
        };
        return Err(RpcError::new(&null, INVALID_REQUEST, msg));
    };
    let id = m.remove("id");
    let id_ok = |id: &Value| id.is_string() || id.as_i64().is_some() || id.as_u64().is_some();
    let shown = id.clone().filter(id_ok).unwrap_or(Value::Null);
    if m.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err(RpcError::new(
            &shown,
            INVALID_REQUEST,
            "jsonrpc must be \"2.0\"",
        ));
    }
    let method = match m.remove("method") {
        Some(Value::String(s)) => s,
        None if m.contains_key("result") || m.contains_key("error") => {
            return Ok(Incoming::Response)
        }
        _ => {
            return Err(RpcError::new(
                &shown,
                INVALID_REQUEST,
                "method must be a string",
            ))
        }
    };
    let params = match m.remove("params") {
        None => Map::new(),
        Some(Value::Object(p)) => p,
        Some(_) => {
            return Err(RpcError::new(
                &shown,
                INVALID_PARAMS,
                "params must be an object",
            ))
        }
    };
    match id {
        None => Ok(Incoming::Notification { method }),
        Some(id) if id_ok(&id) => Ok(Incoming::Request { id, method, params }),
        Some(_) => Err(RpcError::new(
            &Value::Null,
            INVALID_REQUEST,
            "id must be a string or an integer",
        )),
    }
}

pub fn result(id: &Value, result: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "result": result})
}

/// The version both sides speak: the client's if supported, else our latest.
pub fn negotiate(requested: Option<&str>) -> &'static str {
    PROTOCOL_VERSIONS
        .iter()
        .find(|v| Some(**v) == requested)
        .copied()
        .unwrap_or(PROTOCOL_VERSIONS[0])
}

/// `MCP-Protocol-Version` on a request after initialization: absent (the spec's default)
/// or one we speak.
pub fn header_version_ok(header: Option<&str>) -> bool {
    header.is_none_or(|h| PROTOCOL_VERSIONS.contains(&h))
}

pub fn initialize_result(params: &Map<String, Value>) -> Value {
    let requested = params.get("protocolVersion").and_then(Value::as_str);
    json!({
        "protocolVersion": negotiate(requested),
        "capabilities": {"tools": {"listChanged": false}},
        "serverInfo": {"name": "402claw", "version": env!("CARGO_PKG_VERSION")},
        "instructions": "Paid API tools of the 402claw marketplace. search_marketplace is free; \
            other tools are paid per call with x402: call once without payment to get the \
            payment requirements, then again with the PaymentPayload in _meta[\"x402/payment\"].",
    })
}

/// The free search tool's description.
pub fn search_tool() -> Value {
    json!({
        "name": SEARCH_TOOL,
        "description": "Search the marketplace's paid APIs and tools (free). Returns x402 discovery items: resource, price (accepts), description, bazaar input/output schemas, usage signals.",
        "inputSchema": {
            "type": "object",
            "properties": {
                "query": {"type": "string", "minLength": 1, "maxLength": 256},
                "limit": {"type": "integer", "minimum": 1, "maximum": 50},
            },
            "required": ["query"],
        },
        "annotations": {"readOnlyHint": true, "openWorldHint": false},
    })
}

/// `{slug}__{name}` split into slug and tool name (a slug holds no `_`).
pub fn split_tool_name(full: &str) -> Option<(&str, &str)> {
    let (slug, name) = full.split_once("__")?;
    (!slug.is_empty() && !name.is_empty()).then_some((slug, name))
}

/// A tenant tool as `tools/list` shows it; `price` says what a call costs.
pub fn tool_entry(slug: &str, tool: &McpTool, price: &str) -> Value {
    let mut description = tool.description.clone().unwrap_or_default();
    if !description.is_empty() {
        description.push(' ');
    }
    description.push_str(&format!("(paid per call with x402: {price})"));
    json!({
        "name": crate::discovery::qualified_tool_name(slug, &tool.name),
        "description": description,
        "inputSchema": tool.input_schema,
    })
}

/// One page of `tools`: `{tools, nextCursor?}`; the cursor is the next offset, opaque.
pub fn page(id: &Value, tools: &[Value], cursor: Option<&str>) -> Result<Value, RpcError> {
    let offset = match cursor {
        None => 0,
        Some(c) => c
            .parse::<usize>()
            .ok()
            .filter(|o| *o <= tools.len())
            .ok_or_else(|| RpcError::new(id, INVALID_PARAMS, "unknown cursor"))?,
    };
    let end = offset.saturating_add(PAGE_SIZE).min(tools.len());
    let mut r = json!({ "tools": tools[offset..end] });
    if end < tools.len() {
        r["nextCursor"] = json!(end.to_string());
    }
    Ok(r)
}

/// A tool result with an error the model can read (never charged).
pub fn tool_error(text: impl Into<String>) -> Value {
    json!({"content": [{"type": "text", "text": text.into()}], "isError": true})
}

/// Checks a call's arguments against the cheap parts of the tool's input schema: an object
/// of bounded size, every `required` key present, declared primitive types respected.
pub fn check_arguments(schema: &Value, args: &Map<String, Value>) -> Result<(), String> {
    let size = serde_json::to_vec(args)
        .map(|b| b.len())
        .unwrap_or(usize::MAX);
    if size > MAX_ARGUMENTS_BYTES {
        return Err(format!(
            "arguments are {size} bytes; at most {MAX_ARGUMENTS_BYTES}"
        ));
    }
    if let Some(req) = schema.get("required").and_then(Value::as_array) {
        if let Some(k) = req
            .iter()
            .filter_map(Value::as_str)
            .find(|k| !args.contains_key(*k))
        {
            return Err(format!("missing required argument {k:?}"));
        }
    }
    let props = schema.get("properties").and_then(Value::as_object);
    for (k, v) in args {
        let Some(ty) = props
            .and_then(|p| p.get(k))
            .and_then(|p| p.get("type"))
            .and_then(Value::as_str)
        else {
            continue;
        };
        let ok = match ty {
            "string" => v.is_string(),
            "integer" => v.is_i64() || v.is_u64(),
            "number" => v.is_number(),
            "boolean" => v.is_boolean(),
            "object" => v.is_object(),
            "array" => v.is_array(),
            "null" => v.is_null(),
            _ => true,
        };
        if !ok {
            return Err(format!("argument {k:?} must be of type {ty}"));
        }
    }
    Ok(())
}

/// A tool call as an HTTP request to the tenant.
#[derive(Debug, Clone, PartialEq)]
pub struct Invocation {
    pub method: String,
    /// The encoded path the tenant sees.
    pub path: String,
    /// Encoded query string without `?`, when there is one.
    pub query: Option<String>,
    /// JSON body (body methods).
    pub body: Option<Vec<u8>>,
}

fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

const PATH_SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// The request a tool call becomes: path parameters from the arguments (percent-encoded,
/// one segment each), the other arguments as the query (query methods; arrays repeat the
/// key, objects go as JSON text) or as a JSON body (body methods).
pub fn invocation(tool: &McpTool, args: &Map<String, Value>) -> Result<Invocation, String> {
    let mut rest = args.clone();
    let mut segments = Vec::new();
    for seg in tool.route.split('/') {
        match seg.strip_prefix(':') {
            Some(name) => {
                let v = rest
                    .remove(name)
                    .ok_or_else(|| format!("missing path argument {name:?}"))?;
                let text = scalar_text(&v).filter(|t| !t.is_empty()).ok_or_else(|| {
                    format!("path argument {name:?} must be a non-empty string or number")
                })?;
                segments
                    .push(percent_encoding::utf8_percent_encode(&text, PATH_SEGMENT).to_string());
            }
            None => segments.push(seg.to_owned()),
        }
    }
    let path = segments.join("/");
    let body_method = claw_durable::discovery::BODY_METHODS.contains(&tool.method.as_str());
    let (query, body) = if body_method {
        let body = serde_json::to_vec(&Value::Object(rest)).map_err(|e| e.to_string())?;
        (None, Some(body))
    } else if rest.is_empty() {
        (None, None)
    } else {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in &rest {
            match v {
                Value::Null => {}
                Value::Array(items) => {
                    for i in items {
                        q.append_pair(k, &scalar_text(i).unwrap_or_else(|| i.to_string()));
                    }
                }
                other => {
                    q.append_pair(k, &scalar_text(other).unwrap_or_else(|| other.to_string()));
                }
            }
        }
        (Some(q.finish()), None)
    };
    Ok(Invocation {
        method: tool.method.clone(),
        path,
        query: query.filter(|q| !q.is_empty()),
        body,
    })
}

/// The `PAYMENT-SIGNATURE` header for a tool call's `_meta["x402/payment"]`: an x402 v2
/// `PaymentPayload` object whose `resource.url` is `expected_resource` (the called tool's
/// resource), re-encoded as base64 JSON. Anything else is refused with the reason.
pub fn payment_header(payment: &Value, expected_resource: &str) -> Result<String, String> {
    let Value::Object(p) = payment else {
        return Err("_meta[\"x402/payment\"] must be an x402 PaymentPayload object".into());
    };
    if p.get("x402Version").and_then(Value::as_u64) != Some(2) {
        return Err("_meta[\"x402/payment\"] must be an x402 version 2 PaymentPayload".into());
    }
    let resource = p
        .get("resource")
        .and_then(|r| r.get("url"))
        .and_then(Value::as_str)
        .ok_or(
            "the payment names no resource (resource.url); pay the requirements this tool returned",
        )?;
    if resource != expected_resource {
        return Err(format!(
            "this payment is for {resource}, not for this tool call ({expected_resource}); nothing was charged"
        ));
    }
    let text = serde_json::to_vec(payment).map_err(|e| e.to_string())?;
    if text.len() > crate::x402::MAX_PAYMENT_HEADER_BYTES {
        return Err("the payment is too large".into());
    }
    Ok(base64::engine::general_purpose::STANDARD.encode(text))
}

/// Decodes an x402 header (base64 JSON); `None` when it is not that.
pub fn decode_header(value: &str) -> Option<Value> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The tool-result binding's payment-required result.
pub fn payment_required_result(required: Value, receipt: Option<Value>) -> Value {
    let text = serde_json::to_string(&required).unwrap_or_default();
    let mut r = json!({
        "isError": true,
        "structuredContent": required,
        "content": [{"type": "text", "text": text}],
    });
    if let Some(rc) = receipt {
        r["_meta"] = json!({ META_PAYMENT_RESPONSE: rc });
    }
    r
}

/// What the tenant's answer to a tool call becomes. `paid`: the tenant has a price, so an
/// answer below 400 must carry its receipt, or it is withheld.
pub fn answer_result(
    paid: bool,
    status: u16,
    body: &[u8],
    required: Option<Value>,
    receipt: Option<Value>,
) -> Value {
    if status == 402 {
        return match required {
            Some(r) => payment_required_result(r, receipt),
            None => tool_error("payment required, but the requirements could not be read"),
        };
    }
    let text = String::from_utf8_lossy(body).into_owned();
    if status >= 400 {
        let mut r = tool_error(format!("the call failed with status {status}: {text}"));
        if let Some(rc) = receipt {
            r["_meta"] = json!({ META_PAYMENT_RESPONSE: rc });
        }
        return r;
    }
    let settled = receipt
        .as_ref()
        .and_then(|r| r.get("success"))
        .and_then(Value::as_bool)
        == Some(true);
    if paid && !settled {
        return tool_error("the payment was not settled, so the output is withheld");
    }
    let mut r = json!({"content": [{"type": "text", "text": text}], "isError": false});
    if let Ok(v @ Value::Object(_)) = serde_json::from_slice::<Value>(body) {
        r["structuredContent"] = v;
    }
    if let Some(rc) = receipt {
        r["_meta"] = json!({ META_PAYMENT_RESPONSE: rc });
    }
    r
}

#[cfg(test)]
mod tests;
