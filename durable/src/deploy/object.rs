//! The deployment history's routes, served by the `TenantRegistry` class in its per-tenant
//! instances (named `deployments:{slug}`; the dispatcher's `src/deploy/edge.rs` is the only
//! caller). Paths:
//! - `GET /deploy`: the [`DeploymentState`](super::DeploymentState);
//! - `POST /deploy/candidates`: a candidate; header `x-claw-version` is its
//!   [`VersionDraft`](super::VersionDraft) (JSON), the body its bundle, `content-type` the
//!   bundle's;
//! - `POST /deploy/versions/{v}/activate` `{etag}`, `POST /deploy/versions/{v}/live` `{etag}`,
//!   `DELETE /deploy/versions/{v}` (discard a candidate), `GET /deploy/versions/{v}/bundle`;
//! - `GET /deploy/rollback`: the version a rollback would make live;
//! - `DELETE /deploy`: forget everything.

use worker::{Method, Request, Response, Result, State};

use super::{Activation, Deployments, VersionDraft};
use crate::http::{now_ms, problem, reply, to_value, Answer, Call};
use crate::problem::{Code, Problem};
use crate::sql_do::DoSql;

/// Serves one `/deploy...` request.
pub async fn fetch(state: &State, mut req: Request) -> Result<Response> {
    let draft = req.headers().get("x-claw-version")?;
    let content_type = req.headers().get("content-type")?.unwrap_or_default();
    let call = match Call::read(&mut req, &[Method::Post], usize::MAX).await? {
        Ok(call) => call,
        Err(p) => return problem(&p),
    };
    let mut sql = DoSql::new(state);
    let mut d = match Deployments::open(&mut sql) {
        Ok(d) => d,
        Err(e) => return problem(&e.into()),
    };
    let segments = call.segments();
    if let (Method::Get, ["deploy", "versions", v, "bundle"]) = (&call.method, segments.as_slice())
    {
        let version = parse_version(v);
        return match version.and_then(|v| d.bundle(v).map_err(Problem::from)) {
            Ok((ct, bytes)) => {
                let resp = Response::from_bytes(bytes)?;
                resp.headers().set("content-type", &ct)?;
                Ok(resp)
            }
            Err(p) => problem(&p),
        };
    }
    reply(route(&mut d, &call, draft.as_deref(), &content_type))
}

fn parse_version(v: &str) -> std::result::Result<u32, Problem> {
    v.parse()
        .map_err(|_| Problem::new(Code::DeploymentNotFound).detail("versions are numbers"))
}

fn activation(call: &Call) -> std::result::Result<Activation, Problem> {
    serde_json::from_slice(&call.body)
        .map_err(|e| Problem::new(Code::InvalidJson).detail(e.to_string()))
}

fn route(
    d: &mut Deployments<'_, DoSql>,
    call: &Call,
    draft: Option<&str>,
    content_type: &str,
) -> Answer {
    let now_s = now_ms() / 1000;
    match (&call.method, call.segments().as_slice()) {
        (Method::Get, ["deploy"]) => Ok((200, to_value(&d.state()?))),
        (Method::Delete, ["deploy"]) => {
            d.clear()?;
            Ok((200, serde_json::json!({ "cleared": true })))
        }
        (Method::Get, ["deploy", "rollback"]) => Ok((200, to_value(&d.rollback_target()?))),
        (Method::Post, ["deploy", "candidates"]) => {
            let draft: VersionDraft = draft
                .and_then(|h| serde_json::from_str(h).ok())
                .ok_or_else(|| Problem::new(Code::InvalidJson).detail("x-claw-version"))?;
            Ok((
                201,
                to_value(&d.begin(&draft, content_type, &call.body, now_s)?),
            ))
        }
        (Method::Post, ["deploy", "versions", v, "activate"]) => {
            let etag = activation(call)?.etag;
            Ok((200, to_value(&d.activate(parse_version(v)?, &etag)?)))
        }
        (Method::Post, ["deploy", "versions", v, "live"]) => {
            let etag = activation(call)?.etag;
            Ok((200, to_value(&d.set_live(parse_version(v)?, &etag)?)))
        }
        (Method::Delete, ["deploy", "versions", v]) => {
            d.discard(parse_version(v)?)?;
            Ok((200, serde_json::json!({ "discarded": true })))
        }
        _ => Err(Problem::new(Code::RouteNotFound)),
    }
}
