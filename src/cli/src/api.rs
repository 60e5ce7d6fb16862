//! Talking to the platform API: one request type ([`Req`], built by the commands and unit
//! tested without a network), one blocking client, and what every failure means for the
//! exit code.
//!
//! | exit | meaning |
//! |---|---|
//! | 0 | done |
//! | 1 | usage or local validation: nothing was sent |
//! | 2 | refused: 401 or 403 (no, wrong, revoked or out-of-scope token) |
//! | 3 | not found: 404 (tenant, route, payout, ...) |
//! | 4 | any other API error (4xx/5xx problem) |
//! | 5 | network: the platform could not be reached or answered unreadably |

use std::io::Read;
use std::time::Duration;

use crate::config::Token;

pub const EXIT_USAGE: u8 = 1;
pub const EXIT_AUTH: u8 = 2;
pub const EXIT_NOT_FOUND: u8 = 3;
pub const EXIT_API: u8 = 4;
pub const EXIT_NETWORK: u8 = 5;

/// A request, before it is sent: method, the path under the base URL (`/__platform/...`,
/// query included), and the body with its content type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Req {
    pub method: &'static str,
    pub path: String,
    pub body: Option<(String, Vec<u8>)>,
    /// Show an upload progress line while sending the body.
    pub progress: bool,
}

impl Req {
    pub fn get(path: impl Into<String>) -> Req {
        Req {
            method: "GET",
            path: path.into(),
            body: None,
            progress: false,
        }
    }
    pub fn new(method: &'static str, path: impl Into<String>) -> Req {
        Req {
            method,
            ..Req::get(path)
        }
    }
    pub fn json(method: &'static str, path: impl Into<String>, body: &serde_json::Value) -> Req {
        Req {
            body: Some(("application/json".into(), body.to_string().into_bytes())),
            ..Req::new(method, path)
        }
    }
    /// The body as JSON, for tests.
    #[cfg(test)]
    pub fn body_json(&self) -> serde_json::Value {
        let (ct, b) = self.body.as_ref().expect("a body");
        assert_eq!(ct, "application/json");
        serde_json::from_slice(b).expect("JSON")
    }
}

/// Percent-encodes a path segment or query value (RFC 3986 unreserved characters pass).
pub fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `path?k=v&...` with the pairs whose value is set.
pub fn with_query(path: &str, pairs: &[(&str, Option<String>)]) -> String {
    let q: Vec<String> = pairs
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", enc(v))))
        .collect();
    if q.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", q.join("&"))
    }
}

/// A problem+json answer, read loosely: a code this build does not know is still shown.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct ProblemBody {
    pub code: Option<String>,
    pub title: Option<String>,
    pub detail: Option<String>,
    pub field: Option<String>,
}

/// Why a command failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Bad arguments or a config refused before sending anything.
    Usage(String),
    /// The platform answered with an error status.
    Api {
        status: u16,
        problem: Option<ProblemBody>,
        /// The start of a non-problem body.
        text: String,
    },
    /// No (readable) answer.
    Network(String),
}

impl Failure {
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Usage(_) => EXIT_USAGE,
            Failure::Api {
                status: 401 | 403, ..
            } => EXIT_AUTH,
            Failure::Api { status: 404, .. } => EXIT_NOT_FOUND,
            Failure::Api { .. } => EXIT_API,
            Failure::Network(_) => EXIT_NETWORK,
        }
    }

    /// The message printed on stderr: the problem's code and detail (and field).
    pub fn message(&self) -> String {
        match self {
            Failure::Usage(m) => format!("error: {m}"),
            Failure::Network(m) => format!("error: cannot reach the platform: {m}"),
            Failure::Api {
                status,
                problem: Some(p),
                ..
            } => {
                let code = p.code.as_deref().unwrap_or("unknown");
                let mut m = format!("error: {code} ({status})");
                if let Some(t) = &p.title {
                    m.push_str(&format!(": {t}"));
                }
                if let Some(d) = &p.detail {
                    m.push_str(&format!(": {d}"));
                }
                if let Some(f) = &p.field {
                    m.push_str(&format!(" [field {f}]"));
                }
                if *status == 401 {
                    m.push_str("\nhint: check CLAW_TOKEN, --token or `claw login`");
                }
                m
            }
            Failure::Api { status, text, .. } => {
                format!("error: the platform answered {status}: {}", text.trim())
            }
        }
    }

    /// The problem's code, if the platform gave one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Failure::Api {
                problem: Some(p), ..
            } => p.code.as_deref(),
            _ => None,
        }
    }
}

/// Reads an error answer into a [`Failure`].
pub fn failure_from(status: u16, body: &[u8]) -> Failure {
    let problem = serde_json::from_slice::<ProblemBody>(body)
        .ok()
        .filter(|p| p.code.is_some());
    let text: String = String::from_utf8_lossy(body).chars().take(300).collect();
    Failure::Api {
        status,
        problem,
        text,
    }
}

/// The client: base URL, token, one connection-reusing agent.
pub struct Client {
    base: String,
    token: Option<Token>,
    agent: ureq::Agent,
}

/// A body reader that reports its progress on stderr: `uploading 12.0 KiB / 40.1 KiB (30%)`.
struct Progress<'a> {
    inner: &'a [u8],
    sent: usize,
    total: usize,
    last_pct: Option<usize>,
}

impl Read for Progress<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        // Small steps so the line moves on a slow link; the socket buffers anyway.
        let n = self.inner.len().min(buf.len()).min(16 * 1024);
        buf[..n].copy_from_slice(&self.inner[..n]);
        self.inner = &self.inner[n..];
        self.sent += n;
        let pct = (self.sent * 100).checked_div(self.total).unwrap_or(100);
        if self.last_pct != Some(pct) {
            self.last_pct = Some(pct);
            eprint!(
                "\ruploading {} / {} ({pct}%)",
                human_bytes(self.sent),
                human_bytes(self.total)
            );
            if self.sent == self.total {
                eprintln!();
            }
        }
        Ok(n)
    }
}

/// `1536` is `1.5 KiB` (integer arithmetic, one decimal).
pub fn human_bytes(n: usize) -> String {
    const UNITS: [&str; 3] = ["KiB", "MiB", "GiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut unit = 0;
    let mut div = 1024usize;
    while unit + 1 < UNITS.len() && n >= div * 1024 {
        div *= 1024;
        unit += 1;
    }
    let tenths = (n * 10 + div / 2) / div;
    format!("{}.{} {}", tenths / 10, tenths % 10, UNITS[unit])
}

impl Client {
    pub fn new(base: String, token: Option<Token>) -> Client {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(10)))
            .timeout_global(Some(Duration::from_secs(120)))
            .user_agent(format!("claw/{}", env!("CARGO_PKG_VERSION")))
            .build();
        Client {
            base,
            token,
            agent: config.into(),
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// Sends `req`; a 2xx answer's body comes back as received, anything else is a
    /// [`Failure`].
    pub fn send(&self, req: &Req) -> Result<Vec<u8>, Failure> {
        let url = format!("{}{}", self.base, req.path);
        let mut builder = ureq::http::Request::builder()
            .method(req.method)
            .uri(&url)
            .header("accept", "application/json, application/problem+json");
        if let Some(t) = &self.token {
            builder = builder.header("authorization", format!("Bearer {}", t.expose()));
        }
        let net = |e: ureq::Error| Failure::Network(format!("{} {url}: {e}", req.method));
        let resp = match &req.body {
            None => {
                let r = builder
                    .body(())
                    .map_err(|e| Failure::Usage(format!("bad request {url}: {e}")))?;
                self.agent.run(r).map_err(net)?
            }
            Some((ct, bytes)) => {
                let builder = builder
                    .header("content-type", ct)
                    .header("content-length", bytes.len());
                if req.progress {
                    let mut reader = Progress {
                        inner: bytes,
                        sent: 0,
                        total: bytes.len(),
                        last_pct: None,
                    };
                    let r = builder
                        .body(ureq::SendBody::from_reader(&mut reader))
                        .map_err(|e| Failure::Usage(format!("bad request {url}: {e}")))?;
                    self.agent.run(r).map_err(net)?
                } else {
                    let r = builder
                        .body(bytes.as_slice())
                        .map_err(|e| Failure::Usage(format!("bad request {url}: {e}")))?;
                    self.agent.run(r).map_err(net)?
                }
            }
        };
        let status = resp.status().as_u16();
        let body = resp
            .into_body()
            .with_config()
            .limit(64 * 1024 * 1024)
            .read_to_vec()
            .map_err(|e| Failure::Network(format!("reading the answer of {url}: {e}")))?;
        if (200..300).contains(&status) {
            Ok(body)
        } else {
            Err(failure_from(status, &body))
        }
    }

    /// Sends `req` and parses the answer as JSON (keeping the text for `--json`).
    pub fn send_json(&self, req: &Req) -> Result<(serde_json::Value, String), Failure> {
        let body = self.send(req)?;
        let text = String::from_utf8(body)
            .map_err(|_| Failure::Network(format!("{}: the answer is not UTF-8", req.path)))?;
        let value = if text.trim().is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_str(&text).map_err(|e| {
                Failure::Network(format!("{}: the answer is not JSON: {e}", req.path))
            })?
        };
        Ok((value, text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_by_failure() {
        let api = |status| failure_from(status, br#"{"code":"x","detail":"d"}"#);
        assert_eq!(Failure::Usage("u".into()).exit_code(), 1);
        assert_eq!(api(401).exit_code(), 2);
        assert_eq!(api(403).exit_code(), 2);
        assert_eq!(api(404).exit_code(), 3);
        assert_eq!(api(400).exit_code(), 4);
        assert_eq!(api(409).exit_code(), 4);
        assert_eq!(api(503).exit_code(), 4);
        assert_eq!(Failure::Network("n".into()).exit_code(), 5);
    }

    #[test]
    fn problem_messages_carry_code_detail_and_field() {
        let f = failure_from(
            400,
            br#"{"type":"t","title":"A field is invalid","status":400,"code":"invalid_field","detail":"must be 0x followed by 40 hex digits","field":"price.payTo"}"#,
        );
        assert_eq!(f.code(), Some("invalid_field"));
        let m = f.message();
        assert!(m.contains("invalid_field (400)"), "{m}");
        assert!(m.contains("must be 0x followed by 40 hex digits"), "{m}");
        assert!(m.contains("[field price.payTo]"), "{m}");
        // A code this build does not know is shown as it came.
        let f = failure_from(409, br#"{"code":"brand_new_code"}"#);
        assert!(f.message().contains("brand_new_code (409)"));
        // Not a problem: the status and the text.
        let f = failure_from(502, b"Bad Gateway");
        assert_eq!(f.code(), None);
        assert!(f.message().contains("502: Bad Gateway"));
        assert!(failure_from(401, br#"{"code":"unauthorized"}"#)
            .message()
            .contains("hint"));
    }

    #[test]
    fn encodes_queries() {
        assert_eq!(enc("a b/c?d&e=é"), "a%20b%2Fc%3Fd%26e%3D%C3%A9");
        assert_eq!(
            with_query(
                "/__platform/events",
                &[
                    ("tenant", Some("acme".into())),
                    ("since", None),
                    ("limit", Some("5".into()))
                ]
            ),
            "/__platform/events?tenant=acme&limit=5"
        );
        assert_eq!(with_query("/x", &[("a", None)]), "/x");
    }

    #[test]
    fn human_bytes_rounds_in_integers() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(10 * 1024 * 1024), "10.0 MiB");
    }

    #[test]
    fn progress_reader_yields_the_bytes_unchanged() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let mut r = Progress {
            inner: &data,
            sent: 0,
            total: data.len(),
            last_pct: None,
        };
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(out, data);
        assert_eq!(r.sent, data.len());
    }
}
