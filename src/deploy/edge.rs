//! The deploy room's glue: the Cloudflare script API client (over [`super::cloudflare`]'s
//! wire) and the client of the tenant's deployment history object
//! (`claw_durable::deploy::object`, a per-tenant `TenantRegistry` instance).

use claw_durable::deploy::{Activation, DeploymentState, VersionDraft, VersionInfo};
use claw_durable::problem::{Code, Problem};
use serde::de::DeserializeOwned;
use serde_json::Value;
use worker::js_sys::Uint8Array;
use worker::{AbortController, Env, Fetch, Headers, Method, Request, RequestInit};

use super::cloudflare::{
    self, read_answer, ApiFailure, Target, CF_ACCOUNT_ID, CF_API_BASE_URL, CF_API_TOKEN,
    CF_DISPATCH_NAMESPACE,
};
use super::Bundle;
use crate::bindings::{self, REGISTRY};
use crate::http::body::read_response;
use crate::http::deadline::{within, TimedOut};

/// A call to Cloudflare's API gets this long (an upload is compiled there).
const API_TIMEOUT_MS: u64 = 60_000;
/// Answers of the script API are small JSON envelopes.
const MAX_API_ANSWER_BYTES: usize = 1 << 20;

/// The script API of the platform's dispatch namespace.
pub struct Cloudflare {
    target: Target,
    token: String,
}

/// The configured API, or 503 `deployment_unavailable` (fail closed: nothing is deployed
/// without the account, the namespace and the token).
pub fn cloudflare(env: &Env) -> Result<Cloudflare, Problem> {
    let target = Target::new(
        bindings::var(env, CF_API_BASE_URL).as_deref(),
        bindings::var(env, CF_ACCOUNT_ID).as_deref(),
        bindings::var(env, CF_DISPATCH_NAMESPACE).as_deref(),
    )?;
    let token = bindings::var(env, CF_API_TOKEN).ok_or_else(|| {
        Problem::new(Code::DeploymentUnavailable).detail(format!(
            "deployments are not configured: set {CF_API_TOKEN}"
        ))
    })?;
    Ok(Cloudflare { target, token })
}

impl Cloudflare {
    /// One API call; `body` with its content type. The token goes in the header only.
    async fn call(
        &self,
        method: Method,
        url: &str,
        body: Option<(&str, &[u8])>,
    ) -> Result<Value, ApiFailure> {
        let controller = AbortController::default();
        let signal = controller.signal();
        let exchange = async {
            let headers = Headers::new();
            let _ = headers.set("authorization", &format!("Bearer {}", self.token));
            let _ = headers.set("accept", "application/json");
            let mut init = RequestInit::new();
            init.with_method(method)
                .with_redirect(worker::RequestRedirect::Manual);
            if let Some((content_type, bytes)) = body {
                let _ = headers.set("content-type", content_type);
                init.with_body(Some(Uint8Array::from(bytes).into()));
            }
            init.with_headers(headers);
            let req = Request::new_with_init(url, &init)
                .map_err(|_| ApiFailure::Broken("the request could not be built".into()))?;
            let resp = Fetch::Request(req)
                .send_with_signal(&signal)
                .await
                .map_err(|e| ApiFailure::Broken(format!("unreachable: {e}")))?;
            let status = resp.status_code();
            let bytes = read_response(&resp, MAX_API_ANSWER_BYTES)
                .await
                .map_err(|_| ApiFailure::Broken("unreadable answer".into()))?;
            read_answer(status, &bytes)
        };
        let out = within(API_TIMEOUT_MS, exchange)
            .await
            .unwrap_or_else(|TimedOut| {
                controller.abort();
                Err(ApiFailure::Broken(format!(
                    "no answer within {API_TIMEOUT_MS} ms"
                )))
            });
        if let Err(f) = &out {
            // The URL names account, namespace and script; never the token.
            worker::console_error!("cloudflare api {url}: {f:?}");
        }
        out
    }

    /// Uploads a bundle as `script`; returns Cloudflare's etag.
    pub async fn put_script(&self, script: &str, bundle: &Bundle) -> Result<String, Problem> {
        let result = self
            .call(
                Method::Put,
                &self.target.script(script),
                Some((&bundle.content_type, &bundle.body)),
            )
            .await
            .map_err(|f| cloudflare::problem(f, "the upload"))?;
        cloudflare::etag(&result).ok_or_else(|| {
            Problem::new(Code::DeploymentUpstreamFailed).detail("the upload's answer has no etag")
        })
    }

    /// Deletes `script`; false when there was none.
    pub async fn delete_script(&self, script: &str) -> Result<bool, Problem> {
        match self
            .call(Method::Delete, &self.target.script(script), None)
            .await
        {
            Ok(_) => Ok(true),
            Err(ApiFailure::NotFound) => Ok(false),
            Err(f) => Err(cloudflare::problem(f, "deleting the script")),
        }
    }

    pub async fn put_secret(&self, script: &str, name: &str, value: &str) -> Result<(), Problem> {
        let body = cloudflare::secret_body(name, value).to_string();
        self.call(
            Method::Put,
            &self.target.secrets(script),
            Some(("application/json", body.as_bytes())),
        )
        .await
        .map(|_| ())
        .map_err(|f| cloudflare::problem(f, "setting the secret"))
    }

    pub async fn list_secrets(&self, script: &str) -> Result<Vec<String>, Problem> {
        self.call(Method::Get, &self.target.secrets(script), None)
            .await
            .map(|r| cloudflare::secret_names(&r))
            .map_err(|f| cloudflare::problem(f, "listing secrets"))
    }

    /// Deletes a secret; false when the script has no such secret.
    pub async fn delete_secret(&self, script: &str, name: &str) -> Result<bool, Problem> {
        match self
            .call(Method::Delete, &self.target.secret(script, name), None)
            .await
        {
            Ok(_) => Ok(true),
            Err(ApiFailure::NotFound) => Ok(false),
            Err(f) => Err(cloudflare::problem(f, "deleting the secret")),
        }
    }
}

/// The tenant's deployment history object.
pub struct History<'a> {
    env: &'a Env,
    slug: &'a str,
}

fn unavailable(e: impl std::fmt::Display) -> Problem {
    worker::console_error!("deployment history: {e}");
    Problem::new(Code::RegistryUnavailable)
}

impl<'a> History<'a> {
    pub fn of(env: &'a Env, slug: &'a str) -> History<'a> {
        History { env, slug }
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Result<worker::Response, Problem> {
        let namespace = self.env.durable_object(REGISTRY).map_err(unavailable)?;
        let stub = namespace
            .id_from_name(&format!("deployments:{}", self.slug))
            .and_then(|id| id.get_stub())
            .map_err(unavailable)?;
        let h = Headers::new();
        for (k, v) in headers {
            h.set(k, v).map_err(unavailable)?;
        }
        let mut init = RequestInit::new();
        init.with_method(method).with_headers(h);
        if let Some(b) = body {
            init.with_body(Some(Uint8Array::from(b).into()));
        }
        let req = Request::new_with_init(&format!("https://deployments.internal{path}"), &init)
            .map_err(unavailable)?;
        stub.fetch_with_request(req).await.map_err(unavailable)
    }

    /// A JSON answer as `T`, or the object's problem.
    async fn ask<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Result<T, Problem> {
        let mut resp = self.send(method, path, headers, body).await?;
        let bytes = resp.bytes().await.map_err(unavailable)?;
        if (200..300).contains(&resp.status_code()) {
            serde_json::from_slice(&bytes).map_err(unavailable)
        } else {
            Err(serde_json::from_slice::<Problem>(&bytes).unwrap_or_else(unavailable))
        }
    }

    pub async fn state(&self) -> Result<DeploymentState, Problem> {
        self.ask(Method::Get, "/deploy", &[], None).await
    }

    pub async fn begin(
        &self,
        draft: &VersionDraft,
        bundle: &Bundle,
    ) -> Result<VersionInfo, Problem> {
        let header = serde_json::to_string(draft).map_err(unavailable)?;
        self.ask(
            Method::Post,
            "/deploy/candidates",
            &[
                ("x-claw-version", &header),
                ("content-type", &bundle.content_type),
            ],
            Some(&bundle.body),
        )
        .await
    }

    pub async fn activate(&self, version: u32, etag: &str) -> Result<VersionInfo, Problem> {
        let body = serde_json::to_vec(&Activation { etag: etag.into() }).map_err(unavailable)?;
        let path = format!("/deploy/versions/{version}/activate");
        self.ask(Method::Post, &path, &[], Some(&body)).await
    }

    pub async fn set_live(&self, version: u32, etag: &str) -> Result<VersionInfo, Problem> {
        let body = serde_json::to_vec(&Activation { etag: etag.into() }).map_err(unavailable)?;
        let path = format!("/deploy/versions/{version}/live");
        self.ask(Method::Post, &path, &[], Some(&body)).await
    }

    pub async fn discard(&self, version: u32) -> Result<(), Problem> {
        let path = format!("/deploy/versions/{version}");
        self.ask::<Value>(Method::Delete, &path, &[], None)
            .await
            .map(|_| ())
    }

    pub async fn rollback_target(&self) -> Result<VersionInfo, Problem> {
        self.ask(Method::Get, "/deploy/rollback", &[], None).await
    }

    pub async fn bundle(&self, version: u32) -> Result<Bundle, Problem> {
        let path = format!("/deploy/versions/{version}/bundle");
        let mut resp = self.send(Method::Get, &path, &[], None).await?;
        let bytes = resp.bytes().await.map_err(unavailable)?;
        if resp.status_code() != 200 {
            return Err(serde_json::from_slice::<Problem>(&bytes).unwrap_or_else(unavailable));
        }
        let content_type = resp
            .headers()
            .get("content-type")
            .ok()
            .flatten()
            .unwrap_or_default();
        Ok(Bundle {
            content_type,
            body: bytes,
        })
    }

    pub async fn clear(&self) -> Result<(), Problem> {
        self.ask::<Value>(Method::Delete, "/deploy", &[], None)
            .await
            .map(|_| ())
    }
}
