//! Cloudflare's Workers for Platforms script API, the wire: where each call goes and how
//! its answers (`{success, errors, messages, result}`) are read. The same code serves
//! production (`https://api.cloudflare.com/client/v4`) and local runs (the stand-in in
//! `tests/fakes/wfp_scripts_api.js`): only the base URL differs.
//!
//! Settings (Worker vars/secrets; the API is closed unless the last three are set):
//! `CF_API_BASE_URL` (default [`DEFAULT_BASE_URL`]), `CF_ACCOUNT_ID`,
//! `CF_DISPATCH_NAMESPACE`, `CF_API_TOKEN` (secret, sent as a bearer token, never logged
//! nor echoed in a problem).

use claw_durable::problem::{Code, Problem};
use serde::Deserialize;
use serde_json::Value;

pub const DEFAULT_BASE_URL: &str = "https://api.cloudflare.com/client/v4";
pub const CF_API_BASE_URL: &str = "CF_API_BASE_URL";
pub const CF_ACCOUNT_ID: &str = "CF_ACCOUNT_ID";
pub const CF_DISPATCH_NAMESPACE: &str = "CF_DISPATCH_NAMESPACE";
pub const CF_API_TOKEN: &str = "CF_API_TOKEN";
/// Cloudflare's "script not found" error code.
pub const SCRIPT_NOT_FOUND: i64 = 10007;

/// Where the namespace's scripts live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    base: String,
    account: String,
    namespace: String,
}

fn path_safe(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

impl Target {
    /// From the settings; any missing or malformed one closes the API (503).
    pub fn new(
        base: Option<&str>,
        account: Option<&str>,
        namespace: Option<&str>,
    ) -> Result<Target, Problem> {
        let closed = |what: &str| {
            Problem::new(Code::DeploymentUnavailable).detail(format!(
                "deployments are not configured ({what}): set {CF_ACCOUNT_ID}, \
                 {CF_DISPATCH_NAMESPACE} and {CF_API_TOKEN}"
            ))
        };
        let base = base.unwrap_or(DEFAULT_BASE_URL).trim_end_matches('/');
        let parsed = url::Url::parse(base).map_err(|_| closed("CF_API_BASE_URL"))?;
        if !matches!(parsed.scheme(), "https" | "http") {
            return Err(closed("CF_API_BASE_URL"));
        }
        let account = account
            .filter(|a| path_safe(a))
            .ok_or_else(|| closed(CF_ACCOUNT_ID))?;
        let namespace = namespace
            .filter(|n| path_safe(n))
            .ok_or_else(|| closed(CF_DISPATCH_NAMESPACE))?;
        Ok(Target {
            base: base.to_owned(),
            account: account.to_owned(),
            namespace: namespace.to_owned(),
        })
    }

    /// `.../accounts/{account}/workers/dispatch/namespaces/{ns}/scripts/{script}`.
    pub fn script(&self, script: &str) -> String {
        format!(
            "{}/accounts/{}/workers/dispatch/namespaces/{}/scripts/{script}",
            self.base, self.account, self.namespace
        )
    }

    pub fn secrets(&self, script: &str) -> String {
        format!("{}/secrets", self.script(script))
    }

    pub fn secret(&self, script: &str, name: &str) -> String {
        format!("{}/secrets/{name}", self.script(script))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ApiMessage {
    #[serde(default)]
    pub code: i64,
    #[serde(default)]
    pub message: String,
}

#[derive(Debug, Deserialize)]
struct Envelope {
    success: bool,
    #[serde(default)]
    errors: Vec<ApiMessage>,
    #[serde(default)]
    result: Value,
}

/// What went wrong with a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiFailure {
    /// The script (or secret) does not exist.
    NotFound,
    /// Cloudflare refused the request (4xx): its messages, which name the problem.
    Refused(String),
    /// The platform's own credentials were refused (401/403).
    Credentials,
    /// 5xx, not the envelope, or a network failure.
    Broken(String),
}

fn messages(errors: &[ApiMessage]) -> String {
    let text: Vec<String> = errors
        .iter()
        .take(5)
        .map(|e| {
            format!(
                "{} ({})",
                e.message.chars().take(500).collect::<String>(),
                e.code
            )
        })
        .collect();
    if text.is_empty() {
        "no error message".into()
    } else {
        text.join("; ")
    }
}

/// Reads an answer: the `result` of a successful call, else what failed.
pub fn read_answer(status: u16, body: &[u8]) -> Result<Value, ApiFailure> {
    let envelope: Result<Envelope, _> = serde_json::from_slice(body);
    match envelope {
        Ok(e) if e.success && (200..300).contains(&status) => Ok(e.result),
        Ok(e) if status == 404 || e.errors.iter().any(|m| m.code == SCRIPT_NOT_FOUND) => {
            Err(ApiFailure::NotFound)
        }
        Ok(_) if status == 401 || status == 403 => Err(ApiFailure::Credentials),
        Ok(e) if (400..500).contains(&status) => Err(ApiFailure::Refused(messages(&e.errors))),
        Ok(e) => Err(ApiFailure::Broken(format!(
            "status {status}: {}",
            messages(&e.errors)
        ))),
        Err(_) => Err(ApiFailure::Broken(format!(
            "status {status}, not the API's JSON envelope"
        ))),
    }
}

/// The problem a failed call is answered with. `what` says which call ("the upload").
pub fn problem(f: ApiFailure, what: &str) -> Problem {
    match f {
        ApiFailure::NotFound => Problem::new(Code::DeploymentNotFound)
            .detail(format!("{what}: the tenant's script is not deployed")),
        ApiFailure::Refused(m) => {
            Problem::new(Code::DeploymentRejected).detail(format!("{what}: {m}"))
        }
        ApiFailure::Credentials => Problem::new(Code::DeploymentUpstreamFailed)
            .detail(format!("{what}: the platform's API token was refused")),
        ApiFailure::Broken(m) => {
            Problem::new(Code::DeploymentUpstreamFailed).detail(format!("{what}: {m}"))
        }
    }
}

/// The etag of an upload's `result`.
pub fn etag(result: &Value) -> Option<String> {
    result
        .get("etag")
        .and_then(Value::as_str)
        .filter(|e| !e.is_empty())
        .map(str::to_owned)
}

/// The secret names of a `GET .../secrets` result (`[{name, type}]`); values, should any
/// come back, are dropped here.
pub fn secret_names(result: &Value) -> Vec<String> {
    let mut names: Vec<String> = result
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.get("name").and_then(Value::as_str).map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// The body of `PUT .../secrets`.
pub fn secret_body(name: &str, value: &str) -> Value {
    serde_json::json!({ "name": name, "text": value, "type": "secret_text" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_closed_settings() {
        let t = Target::new(None, Some("abc123"), Some("402claw-production")).unwrap();
        assert_eq!(
            t.script("tenant-acme"),
            "https://api.cloudflare.com/client/v4/accounts/abc123/workers/dispatch/namespaces/402claw-production/scripts/tenant-acme"
        );
        assert!(t
            .secret("tenant-acme", "API_KEY")
            .ends_with("/scripts/tenant-acme/secrets/API_KEY"));
        let local =
            Target::new(Some("http://127.0.0.1:9/client/v4/"), Some("a"), Some("n")).unwrap();
        assert_eq!(local.secrets("s"), "http://127.0.0.1:9/client/v4/accounts/a/workers/dispatch/namespaces/n/scripts/s/secrets");
        for (base, account, ns) in [
            (None, None, Some("n")),
            (None, Some("a"), None),
            (None, Some("a/../b"), Some("n")),
            (Some("ftp://x"), Some("a"), Some("n")),
            (Some("not a url"), Some("a"), Some("n")),
        ] {
            let p = Target::new(base, account, ns).unwrap_err();
            assert_eq!(p.code, Code::DeploymentUnavailable);
        }
    }

    #[test]
    fn answers_are_read_by_envelope_and_status() {
        let ok = br#"{"success":true,"errors":[],"messages":[],"result":{"id":"s","etag":"e1"}}"#;
        assert_eq!(etag(&read_answer(200, ok).unwrap()).as_deref(), Some("e1"));
        let syntax = br#"{"success":false,"errors":[{"code":10021,"message":"Uncaught SyntaxError: Unexpected end of input"}],"messages":[],"result":null}"#;
        let f = read_answer(400, syntax).unwrap_err();
        assert_eq!(
            f,
            ApiFailure::Refused("Uncaught SyntaxError: Unexpected end of input (10021)".into())
        );
        let p = problem(f, "the upload");
        assert_eq!((p.code, p.status), (Code::DeploymentRejected, 422));
        assert!(p.detail.unwrap().contains("SyntaxError"));
        let missing = br#"{"success":false,"errors":[{"code":10007,"message":"workers.api.error.script_not_found"}],"messages":[],"result":null}"#;
        assert_eq!(read_answer(404, missing), Err(ApiFailure::NotFound));
        let auth = br#"{"success":false,"errors":[{"code":10000,"message":"Authentication error"}],"messages":[],"result":null}"#;
        assert_eq!(read_answer(403, auth), Err(ApiFailure::Credentials));
        assert!(matches!(
            read_answer(502, b"<html>bad gateway</html>"),
            Err(ApiFailure::Broken(_))
        ));
        assert!(matches!(read_answer(500, ok), Err(ApiFailure::Broken(_))));
        // success: false with a 200 is not a success.
        let odd = br#"{"success":false,"errors":[],"messages":[],"result":null}"#;
        assert!(read_answer(200, odd).is_err());
    }

    #[test]
    fn secret_names_only() {
        let r: Value = serde_json::json!([{"name":"B","type":"secret_text","text":"leak"},{"name":"A","type":"secret_text"}]);
        assert_eq!(secret_names(&r), ["A", "B"]);
        assert_eq!(secret_body("A", "v")["type"], "secret_text");
    }
}
