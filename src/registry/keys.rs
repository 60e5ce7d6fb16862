//! The creator keys' routes (`/__platform/keys...`, admin token, checked by
//! `crate::platform::edge`), relayed to the registry object that stores the keys
//! (`claw_durable::registry::keys`), and the check of a presented key ([`verify`]).

use claw_durable::problem::{Code, Problem};
use claw_durable::registry::keys::{CreatedKey, Grant, VerifyKey, MAX_CREATE_BODY_BYTES};
use worker::{Method, Response};

use super::edge as registry;
use crate::http::body::read_bounded;
use crate::http::respond;
use crate::platform::edge::PlatformCall;
use crate::platform::KeyRoute;

fn unavailable(what: impl std::fmt::Display) -> Problem {
    worker::console_error!("registry_unavailable: {what}");
    Problem::new(Code::RegistryUnavailable)
}

pub async fn handle(call: PlatformCall<'_>, route: KeyRoute) -> Result<Response, Problem> {
    let (mut req, env, query) = call.into_parts();
    match route {
        KeyRoute::Create => {
            let body = read_bounded(&mut req, MAX_CREATE_BODY_BYTES, "a key request").await?;
            let resp = registry::call(env, Method::Post, "/keys", Some(body)).await?;
            if resp.status_code() != 201 {
                return Ok(resp);
            }
            // Re-answered from the wire type: the one answer that shows the key.
            let created: CreatedKey = claw_durable::http::body_json(&resp)
                .await
                .map_err(unavailable)?;
            respond::json(201, &created)
        }
        KeyRoute::List => {
            let path = match query {
                Some(q) => format!("/keys?{q}"),
                None => "/keys".to_owned(),
            };
            registry::call(env, Method::Get, &path, None).await
        }
        KeyRoute::Revoke(id) => {
            registry::call(env, Method::Delete, &format!("/keys/{id}"), None).await
        }
    }
}

/// The grant of the creator key with this id and hash, asked of the registry every time
/// (nothing is cached, so a revoked key is refused from the next request on); `None` when
/// the key is unknown, revoked or expired. A registry that cannot answer is 503: the
/// request is refused, never let through.
pub async fn verify(env: &worker::Env, id: String, hash: String) -> Result<Option<Grant>, Problem> {
    let body = serde_json::to_vec(&VerifyKey { id, hash }).map_err(unavailable)?;
    let resp = registry::call(env, Method::Post, "/keys/verify", Some(body)).await?;
    match resp.status_code() {
        200 => Ok(Some(
            claw_durable::http::body_json(&resp)
                .await
                .map_err(unavailable)?,
        )),
        401 => Ok(None),
        s => Err(unavailable(format!("key check answered {s}"))),
    }
}
