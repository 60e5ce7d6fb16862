//! The deployment and secrets routes (`/__platform/tenants/{slug}/deployment...`,
//! `.../secrets...`; token checked by `crate::platform::edge`).
//!
//! A deployment, in order: the tenant must exist and be deployable (function or dataset,
//! no `workerName` of its own: its script is `tenant-{slug}`); the API must be configured
//! (else 503, before the body is read); the upload is read (bounded) and validated, wrapped
//! and bundled (`super`); the bundle is stored as a candidate in the tenant's history; it is
//! uploaded to the namespace; only then is it made live. A refused or failed upload drops
//! the candidate and answers the problem: the live version, on Cloudflare and in the
//! history, is the one before.

use claw_durable::problem::{Code, Problem};
use claw_durable::registry::TenantRecord;
use claw_durable::tenant::{deployed_script_name, ResourceType};
use serde::Deserialize;
use serde_json::json;
use worker::{Env, Response};

use super::edge::{cloudflare, Cloudflare, History};
use super::{
    dataset_bundle, function_bundle, read_upload, validate_dataset, validate_function, Policy,
    MAX_UPLOAD_BYTES,
};
use crate::http::body::read_bounded;
use crate::http::respond;
use crate::platform::edge::PlatformCall;
use crate::platform::DeployRoute;
use crate::registry::edge as registry;

/// A secret's value (`{"value": "..."}`), at most this many bytes of JSON.
const MAX_SECRET_BODY_BYTES: usize = 16 * 1024;

pub async fn handle(call: PlatformCall<'_>, route: DeployRoute) -> Result<Response, Problem> {
    let (mut req, env, _query) = call.into_parts();
    let slug = route.slug().to_owned();
    // An upload is read (bounded) before anything can refuse it: an answer sent over a body
    // still arriving can close the connection under the client, which then sees a network
    // error instead of the problem (an unknown tenant, a tenant that is not deployable).
    let upload = match route {
        DeployRoute::Put { .. } => {
            let content_type = req.headers().get("content-type").ok().flatten();
            let body = read_bounded(&mut req, MAX_UPLOAD_BYTES, "a deployment upload").await?;
            Some((content_type, body))
        }
        _ => None,
    };
    let record = registry::existing(env, &slug).await?;
    let script = deployable(&record)?;
    let history = History::of(env, &slug);
    match route {
        DeployRoute::Get { .. } => respond::json(200, &history.state().await?),
        DeployRoute::Put { .. } => {
            let cf = cloudflare(env)?;
            let (content_type, body) = upload.unwrap_or_default();
            deploy(
                &cf,
                &history,
                &record,
                &script,
                content_type.as_deref(),
                body,
            )
            .await
        }
        DeployRoute::Rollback { .. } => {
            let cf = cloudflare(env)?;
            let target = history.rollback_target().await?;
            let bundle = history.bundle(target.version).await?;
            let etag = cf.put_script(&script, &bundle).await?;
            let live = history.set_live(target.version, &etag).await?;
            respond::json(200, &json!({ "live": live }))
        }
        DeployRoute::ListSecrets { .. } => {
            let names = cloudflare(env)?.list_secrets(&script).await?;
            let secrets: Vec<_> = names.iter().map(|n| json!({ "name": n })).collect();
            respond::json(200, &json!({ "secrets": secrets }))
        }
        DeployRoute::PutSecret { name, .. } => {
            let cf = cloudflare(env)?;
            let body = read_bounded(&mut req, MAX_SECRET_BODY_BYTES, "a secret").await?;
            let value = secret_value(&body)?;
            cf.put_secret(&script, &name, &value).await?;
            respond::json(200, &json!({ "name": name }))
        }
        DeployRoute::DeleteSecret { name, .. } => {
            if cloudflare(env)?.delete_secret(&script, &name).await? {
                respond::json(200, &json!({ "name": name, "deleted": true }))
            } else {
                Err(Problem::new(Code::DeploymentNotFound)
                    .detail(format!("the script has no secret {name}")))
            }
        }
    }
}

/// The tenant's script, if the deployment API manages it.
fn deployable(record: &TenantRecord) -> Result<String, Problem> {
    let c = &record.config;
    if c.resource_type == ResourceType::Proxy {
        return Err(Problem::new(Code::DeploymentNotSupported)
            .detail("proxy tenants are served by the platform: there is no script to deploy"));
    }
    if let Some(name) = &c.worker_name {
        return Err(Problem::new(Code::DeploymentNotSupported).detail(format!(
            "this tenant runs the script {name:?} (workerName); remove workerName to deploy \
             through the API"
        )));
    }
    Ok(deployed_script_name(&c.slug))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretBody {
    value: String,
}

fn secret_value(body: &[u8]) -> Result<String, Problem> {
    // The serde message could quote the value: say only what is wrong.
    let parsed: SecretBody = serde_json::from_slice(body).map_err(|_| {
        Problem::invalid_field("value", "the body is {\"value\": \"...\"} (a string)")
    })?;
    if parsed.value.is_empty() {
        return Err(Problem::invalid_field("value", "must not be empty"));
    }
    Ok(parsed.value)
}

async fn deploy(
    cf: &Cloudflare,
    history: &History<'_>,
    record: &TenantRecord,
    script: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> Result<Response, Problem> {
    let config = &record.config;
    let policy = Policy::of(config);
    let (metadata, parts) = read_upload(content_type, &body)?;
    // A Worker has 128 MB: the raw body, the parts, a dataset's table and its bundle are
    // never all held at once.
    drop(body);
    let (draft, bundle) = if config.resource_type == ResourceType::Dataset {
        let (upload, table) = validate_dataset(metadata, parts)?;
        let bundle = dataset_bundle(&config.slug, &upload, &table, &policy);
        (upload.draft(), bundle)
    } else {
        let upload = validate_function(metadata, parts)?;
        let bundle = function_bundle(&config.slug, &upload, &policy);
        (upload.draft(), bundle)
    };
    let candidate = history.begin(&draft, &bundle).await?;
    let etag = match cf.put_script(script, &bundle).await {
        Ok(etag) => etag,
        Err(p) => {
            // The live version stays; the candidate goes (a failure here leaves it unseen).
            if let Err(e) = history.discard(candidate.version).await {
                worker::console_error!("discarding candidate {}: {e:?}", candidate.version);
            }
            return Err(p);
        }
    };
    let live = history.activate(candidate.version, &etag).await?;
    respond::json(201, &live)
}

/// Deleting a tenant deletes its deployed script and history first (so no script outlives
/// its tenant). A tenant that never deployed needs no API; one that did needs it (503
/// otherwise: the tenant is kept, fail closed).
pub async fn forget_tenant(env: &Env, slug: &str) -> Result<(), Problem> {
    let Some(record) = registry::tenant(env, slug).await? else {
        return Ok(());
    };
    let Ok(script) = deployable(&record) else {
        return Ok(());
    };
    let history = History::of(env, slug);
    if history.state().await?.history.is_empty() {
        return Ok(());
    }
    cloudflare(env)?.delete_script(&script).await?;
    history.clear().await
}
