//! `/mcp`'s glue: read one JSON-RPC message, answer it; a tenant tool call becomes a request
//! to `/t/{slug}/...` handed to `crate::entry::tenant`, the function HTTP tenant calls go
//! through (limit, paywall, dispatch, settle, usage), so nothing about money is decided here.

use claw_durable::problem::{Code, Problem};
use claw_durable::registry::TenantStatus;
use serde_json::{json, Map, Value};
use worker::{Context, Env, Headers, Method, Request, RequestInit, Response};

use super::{
    answer_result, check_arguments, header_version_ok, initialize_result, invocation, page, parse,
    payment_header, result, search_tool, split_tool_name, tool_entry, tool_error, Incoming,
    RpcError, INTERNAL_ERROR, INVALID_PARAMS, MAX_MESSAGE_BYTES, META_PAYMENT, METHOD_NOT_FOUND,
    SEARCH_TOOL,
};
use crate::discovery::edge as discovery;
use crate::discovery::SearchQuery;
use crate::http::body::read_bounded;
use crate::http::respond;
use crate::registry::edge as registry;
use crate::x402::{HEADER_PAYMENT_REQUIRED, HEADER_PAYMENT_RESPONSE, HEADER_PAYMENT_SIGNATURE};

/// The caller's address headers a tool call keeps, so the limiter sees the same caller.
const CALLER_HEADERS: &[&str] = &[
    "cf-connecting-ip",
    "x-forwarded-for",
    "x-real-ip",
    "user-agent",
];

/// Never fails: transport problems are problem+json, protocol errors JSON-RPC errors.
pub async fn handle(mut req: Request, env: &Env, ctx: &Context) -> Response {
    if req.method() != Method::Post {
        let p = Problem::new(Code::MethodNotAllowed)
            .detail("/mcp speaks Streamable HTTP with POST only (no server-sent stream)");
        let mut r = respond::problem(&p);
        let _ = r.headers_mut().set("allow", "POST");
        return r;
    }
    let version = req.headers().get("mcp-protocol-version").ok().flatten();
    if !header_version_ok(version.as_deref()) {
        let p = Problem::new(Code::InvalidField)
            .field("MCP-Protocol-Version")
            .detail("unsupported MCP protocol version");
        return respond::problem(&p);
    }
    let body = match read_bounded(&mut req, MAX_MESSAGE_BYTES, "an MCP message").await {
        Ok(b) => b,
        Err(p) => return respond::problem(&p),
    };
    let answer = match parse(&body) {
        Err(e) => e.to_json(),
        Ok(Incoming::Notification { .. } | Incoming::Response) => {
            return respond::with_body(202, "application/json", Vec::new())
        }
        Ok(Incoming::Request { id, method, params }) => {
            match call(&req, env, ctx, &method, &id, params).await {
                Ok(r) => result(&id, r),
                Err(e) => e.to_json(),
            }
        }
    };
    let text = serde_json::to_vec(&answer).unwrap_or_default();
    respond::with_body(200, "application/json", text)
}

fn origin(req: &Request) -> Result<String, Problem> {
    req.url()
        .map(|u| u.origin().ascii_serialization())
        .map_err(|_| Problem::new(Code::InvalidUrl))
}

fn internal(id: &Value, p: &Problem) -> RpcError {
    RpcError::new(
        id,
        INTERNAL_ERROR,
        format!(
            "{}: {}",
            p.code.as_str(),
            p.detail.clone().unwrap_or_default()
        ),
    )
}

async fn call(
    req: &Request,
    env: &Env,
    ctx: &Context,
    method: &str,
    id: &Value,
    params: Map<String, Value>,
) -> Result<Value, RpcError> {
    match method {
        "initialize" => Ok(initialize_result(&params)),
        "ping" => Ok(json!({})),
        "tools/list" => {
            let origin = origin(req).map_err(|p| internal(id, &p))?;
            let snap = discovery::snapshot(env, &origin)
                .await
                .map_err(|p| internal(id, &p))?;
            let mut tools = vec![search_tool()];
            for rec in snap.records.iter() {
                let Some(price) = &rec.config.price else {
                    continue;
                };
                let cost = format!(
                    "{} atomic units of {} on {}",
                    price.amount_atomic,
                    price.asset,
                    price.network.caip2()
                );
                tools.extend(
                    rec.config
                        .mcp_tools
                        .iter()
                        .map(|t| tool_entry(&rec.config.slug, t, &cost)),
                );
            }
            let cursor = params.get("cursor").and_then(Value::as_str);
            page(id, &tools, cursor)
        }
        "tools/call" => tools_call(req, env, ctx, id, params).await,
        _ => Err(RpcError::new(
            id,
            METHOD_NOT_FOUND,
            format!("unknown method {method:?}"),
        )),
    }
}

async fn tools_call(
    req: &Request,
    env: &Env,
    ctx: &Context,
    id: &Value,
    params: Map<String, Value>,
) -> Result<Value, RpcError> {
    let name = params
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| RpcError::new(id, INVALID_PARAMS, "params.name must be a tool name"))?;
    let args = match params.get("arguments") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(a)) => a.clone(),
        Some(_) => {
            return Err(RpcError::new(
                id,
                INVALID_PARAMS,
                "params.arguments must be an object",
            ))
        }
    };
    let payment = params.get("_meta").and_then(|m| m.get(META_PAYMENT));
    let origin = origin(req).map_err(|p| internal(id, &p))?;
    if name == SEARCH_TOOL {
        check_arguments(&search_tool()["inputSchema"], &args)
            .map_err(|e| RpcError::new(id, INVALID_PARAMS, e))?;
        return search(env, &origin, &args)
            .await
            .map_err(|p| internal(id, &p));
    }
    let unknown = || RpcError::new(id, INVALID_PARAMS, format!("unknown tool {name:?}"));
    let (slug, tool_name) = split_tool_name(name).ok_or_else(unknown)?;
    if claw_durable::tenant::validate_slug(slug).is_err() {
        return Err(unknown());
    }
    let record = registry::tenant(env, slug)
        .await
        .map_err(|p| internal(id, &p))?
        .ok_or_else(unknown)?;
    if record.status == TenantStatus::Suspended {
        return Ok(tool_error(format!(
            "the tenant {slug:?} is suspended; nothing was charged"
        )));
    }
    let tool = record
        .config
        .mcp_tools
        .iter()
        .find(|t| t.name == tool_name)
        .ok_or_else(unknown)?;
    check_arguments(&tool.input_schema, &args).map_err(|e| RpcError::new(id, INVALID_PARAMS, e))?;
    let inv = invocation(tool, &args).map_err(|e| RpcError::new(id, INVALID_PARAMS, e))?;
    let resource = format!("{origin}/t/{slug}{}", inv.path);
    let headers = Headers::new();
    for h in CALLER_HEADERS {
        if let Ok(Some(v)) = req.headers().get(h) {
            let _ = headers.set(h, &v);
        }
    }
    if let Some(p) = payment {
        match payment_header(p, &resource) {
            Ok(h) => {
                let _ = headers.set(HEADER_PAYMENT_SIGNATURE, &h);
            }
            Err(why) => return Ok(tool_error(why)),
        }
    }
    let url_text = match &inv.query {
        Some(q) => format!("{resource}?{q}"),
        None => resource.clone(),
    };
    let method = Method::from(inv.method.clone());
    let mut init = RequestInit::new();
    init.with_method(method);
    if let Some(body) = &inv.body {
        let _ = headers.set("content-type", "application/json");
        init.with_body(Some(
            worker::js_sys::Uint8Array::from(body.as_slice()).into(),
        ));
    }
    init.with_headers(headers);
    let inner = Request::new_with_init(&url_text, &init).map_err(|e| {
        RpcError::new(
            id,
            INTERNAL_ERROR,
            format!("building the tool's request: {e}"),
        )
    })?;
    let url = inner
        .url()
        .map_err(|e| RpcError::new(id, INTERNAL_ERROR, e.to_string()))?;
    let answer = crate::entry::tenant(inner, env, ctx, &url, slug, &inv.path).await;
    let resp = answer.unwrap_or_else(|p| respond::problem(&p));
    let header = |name: &str| resp.headers().get(name).ok().flatten();
    let required = header(HEADER_PAYMENT_REQUIRED).and_then(|h| super::decode_header(&h));
    let receipt = header(HEADER_PAYMENT_RESPONSE).and_then(|h| super::decode_header(&h));
    let status = resp.status_code();
    let body = claw_durable::http::body_bytes(&resp)
        .await
        .unwrap_or_default();
    Ok(answer_result(
        record.config.is_paid(),
        status,
        &body,
        required,
        receipt,
    ))
}

async fn search(env: &Env, origin: &str, args: &Map<String, Value>) -> Result<Value, Problem> {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    if let Some(t) = args.get("query").and_then(Value::as_str) {
        q.append_pair("query", t);
    }
    if let Some(l) = args.get("limit").and_then(Value::as_u64) {
        q.append_pair("limit", &l.to_string());
    }
    let query = q.finish();
    let parsed = match SearchQuery::parse(Some(&query)) {
        Ok(p) => p,
        Err(p) => return Ok(tool_error(p.detail.unwrap_or_default())),
    };
    let snap = discovery::snapshot(env, origin).await?;
    let found = serde_json::to_value(parsed.answer(&snap.entries))
        .map_err(|e| Problem::internal(e.to_string()))?;
    Ok(json!({
        "content": [{"type": "text", "text": found.to_string()}],
        "structuredContent": found,
        "isError": false,
    }))
}
