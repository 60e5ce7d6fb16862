//! Which headers cross the proxy, in each direction, on top of [`crate::dispatch`]'s rules.
//!
//! Caller -> upstream: everything [`forward_request_header`] forwards (it drops hop-by-hop
//! headers and those the `Connection` header names, `host`, `x-payment`,
//! `payment-signature`, `cf-worker`, `x-claw-*`), except also:
//! - `cookie`: tenants share the platform's origin (`/t/{slug}/...`), so a caller's cookies
//!   may belong to another tenant or to the platform;
//! - the caller's network identity, which a third-party upstream has no business seeing:
//!   `cf-*`, `x-forwarded-*`, `x-real-ip`, `forwarded`, `true-client-ip`;
//! - `content-length` (the runtime sets it from the body it sends);
//! - `accept-encoding`: the proxy reads the upstream's body whole, so the runtime negotiates
//!   the encodings it decodes itself; a caller's choice (say `zstd`, which the runtime
//!   passes through undecoded) would break the transform and put one caller's encoding in
//!   the cache for all;
//! - the tenant's `apiKeyHeader`, a platform credential;
//! - `range` and `if-range` when a JSON transform runs (it needs the whole body);
//! - any header named like an injected header, so a caller cannot override a credential.
//!
//! Then the injected headers, each with its secret's value.
//!
//! Secrets are scoped per tenant: a tenant's `injectHeaders[].secret` must name a binding
//! that starts with [`secret_prefix`] of its slug (`acme-weather` -> `ACME_WEATHER__`), e.g.
//! `ACME_WEATHER__API_KEY`. Without that, a config naming another binding of the
//! dispatcher (`PLATFORM_ADMIN_TOKEN`, another tenant's key) would send its value to an
//! upstream the config chooses. Slugs never hold `--`, so no tenant's prefix is another's.
//!
//! Upstream -> caller: everything [`forward_response_header`] forwards (no hop-by-hop), minus
//! the headers the upstream's `Connection` names, minus `set-cookie`/`set-cookie2` (cookies
//! on the shared platform origin), the platform's own payment headers (`payment-response`,
//! `x-payment-response`, `payment-required`) and `x-claw-*` (an upstream must not forge
//! them), headers that configure the whole origin (`strict-transport-security`,
//! `clear-site-data`, `alt-svc`, `public-key-pins*`, `expect-ct`, `nel`, `report-to`,
//! `reporting-endpoints`, `service-worker-allowed`), any injected header name (never echo a
//! credential), and, when the body was rewritten, the headers that describe the old bytes
//! (`content-length`, `content-encoding`, `content-range`, `etag`, `content-md5`, `digest`,
//! `content-digest`, `repr-digest`).

use claw_durable::problem::Code;
use claw_durable::tenant::InjectedHeader;
use thiserror::Error;

use crate::dispatch::{forward_request_header, forward_response_header, PLATFORM_HEADER_PREFIX};

/// Longest injected header value accepted, in bytes.
pub const MAX_INJECTED_VALUE_BYTES: usize = 8 * 1024;

const CALLER_IDENTITY: &[&str] = &["x-real-ip", "forwarded", "true-client-ip"];
const CALLER_IDENTITY_PREFIXES: &[&str] = &["cf-", "x-forwarded-"];

const PLATFORM_RESPONSE_HEADERS: &[&str] =
    &["payment-response", "x-payment-response", "payment-required"];

const ORIGIN_WIDE: &[&str] = &[
    "set-cookie",
    "set-cookie2",
    "strict-transport-security",
    "clear-site-data",
    "alt-svc",
    "public-key-pins",
    "public-key-pins-report-only",
    "expect-ct",
    "nel",
    "report-to",
    "reporting-endpoints",
    "service-worker-allowed",
];

const BODY_DESCRIBING: &[&str] = &[
    "content-length",
    "content-encoding",
    "content-range",
    "etag",
    "content-md5",
    "digest",
    "content-digest",
    "repr-digest",
];

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum HeaderError {
    /// The secret a header names is not bound (detail for logs only).
    #[error("secret {secret} for header {header} is not bound")]
    SecretMissing { header: String, secret: String },
    /// The secret is not in the tenant's scope ([`secret_prefix`]).
    #[error("secret {secret} for header {header} is outside the tenant's scope {prefix}*")]
    SecretOutOfScope {
        header: String,
        secret: String,
        prefix: String,
    },
    /// The secret's value cannot be a header value (never printed).
    #[error("the value of secret {secret} for header {header} is not a valid header value")]
    SecretInvalid { header: String, secret: String },
}

impl HeaderError {
    pub fn code(&self) -> Code {
        Code::UpstreamCredentialsInvalid
    }

    /// The tenant's setup is broken; the caller is not at fault: 502. The problem's detail
    /// should stay generic (the secret's name is for the logs).
    pub fn status(&self) -> u16 {
        self.code().status()
    }
}

/// The rules for one tenant's upstream requests.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestHeaderRules<'a> {
    /// The tenant's `injectHeaders`.
    pub injected: &'a [InjectedHeader],
    /// The tenant's `apiKeyHeader` (the caller's platform credential).
    pub api_key_header: Option<&'a str>,
    /// A JSON transform will read the response.
    pub transforming: bool,
}

/// The prefix of the secret bindings tenant `slug` may name: the slug in upper case, `-` as
/// `_`, then `__`.
pub fn secret_prefix(slug: &str) -> String {
    let mut p: String = slug
        .chars()
        .map(|c| match c {
            '-' => '_',
            c => c.to_ascii_uppercase(),
        })
        .collect();
    p.push_str("__");
    p
}

/// Refuses an injected header whose secret is outside tenant `slug`'s scope.
pub fn check_secret_scope(slug: &str, injected: &[InjectedHeader]) -> Result<(), HeaderError> {
    let prefix = secret_prefix(slug);
    match injected
        .iter()
        .find(|h| !(h.secret.starts_with(&prefix) && h.secret.len() > prefix.len()))
    {
        Some(h) => Err(HeaderError::SecretOutOfScope {
            header: h.name.clone(),
            secret: h.secret.clone(),
            prefix,
        }),
        None => Ok(()),
    }
}

/// Looks up each injected header's secret (`secret(binding_name)`) and checks its value.
pub fn resolve_injected(
    injected: &[InjectedHeader],
    mut secret: impl FnMut(&str) -> Option<String>,
) -> Result<Vec<(String, String)>, HeaderError> {
    injected
        .iter()
        .map(|h| {
            let value = secret(&h.secret).ok_or_else(|| HeaderError::SecretMissing {
                header: h.name.clone(),
                secret: h.secret.clone(),
            })?;
            if !valid_header_value(&value) {
                return Err(HeaderError::SecretInvalid {
                    header: h.name.clone(),
                    secret: h.secret.clone(),
                });
            }
            Ok((h.name.clone(), value))
        })
        .collect()
}

/// Non-empty, at most [`MAX_INJECTED_VALUE_BYTES`], visible ASCII with inner spaces or tabs,
/// no surrounding whitespace (which `Headers` would strip).
fn valid_header_value(v: &str) -> bool {
    let b = v.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_INJECTED_VALUE_BYTES
        && b.iter()
            .all(|c| c.is_ascii_graphic() || *c == b' ' || *c == b'\t')
        && !matches!(b.first(), Some(b' ' | b'\t'))
        && !matches!(b.last(), Some(b' ' | b'\t'))
}

/// Whether a caller's request header goes upstream. `connection_tokens` as
/// [`crate::dispatch::connection_tokens`] gives them.
pub fn proxy_request_header(
    name: &str,
    connection_tokens: &[String],
    rules: &RequestHeaderRules,
) -> bool {
    if !forward_request_header(name, connection_tokens) {
        return false;
    }
    let name = name.to_ascii_lowercase();
    let n = name.as_str();
    !(n == "cookie"
        || n == "content-length"
        || n == "accept-encoding"
        || CALLER_IDENTITY.contains(&n)
        || CALLER_IDENTITY_PREFIXES.iter().any(|p| n.starts_with(p))
        || rules
            .api_key_header
            .is_some_and(|h| h.eq_ignore_ascii_case(n))
        || (rules.transforming && (n == "range" || n == "if-range"))
        || rules
            .injected
            .iter()
            .any(|h| h.name.eq_ignore_ascii_case(n)))
}

/// The upstream request's headers: the caller's that pass [`proxy_request_header`], in order,
/// then the injected ones (`resolved` from [`resolve_injected`]).
pub fn upstream_request_headers<'h>(
    caller: impl IntoIterator<Item = (&'h str, &'h str)>,
    rules: &RequestHeaderRules,
    resolved: &[(String, String)],
) -> Vec<(String, String)> {
    let caller: Vec<(&str, &str)> = caller.into_iter().collect();
    let connection = caller
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("connection"))
        .map(|(_, v)| *v)
        .collect::<Vec<_>>()
        .join(",");
    let tokens = crate::dispatch::connection_tokens(Some(&connection));
    let mut out: Vec<(String, String)> = caller
        .into_iter()
        .filter(|(n, _)| proxy_request_header(n, &tokens, rules))
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect();
    out.extend(resolved.iter().cloned());
    out
}

/// Whether the caller's own `Authorization` went upstream (for [`super::cache::CacheInput`]).
pub fn sends_caller_authorization<'h>(
    upstream: impl IntoIterator<Item = (&'h str, &'h str)>,
    rules: &RequestHeaderRules,
) -> bool {
    !rules
        .injected
        .iter()
        .any(|h| h.name.eq_ignore_ascii_case("authorization"))
        && upstream
            .into_iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("authorization"))
}

/// Whether an upstream response header goes back to the caller. `connection_tokens` are those
/// of the upstream response's `Connection` header.
pub fn proxy_response_header(
    name: &str,
    connection_tokens: &[String],
    injected: &[InjectedHeader],
    body_rewritten: bool,
) -> bool {
    if !forward_response_header(name) {
        return false;
    }
    let name = name.to_ascii_lowercase();
    let n = name.as_str();
    !(connection_tokens.iter().any(|t| t == n)
        || ORIGIN_WIDE.contains(&n)
        || PLATFORM_RESPONSE_HEADERS.contains(&n)
        || n.starts_with(PLATFORM_HEADER_PREFIX)
        || injected.iter().any(|h| h.name.eq_ignore_ascii_case(n))
        || (body_rewritten && BODY_DESCRIBING.contains(&n)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inj(names: &[&str]) -> Vec<InjectedHeader> {
        names
            .iter()
            .map(|n| InjectedHeader {
                name: n.to_string(),
                secret: format!("S_{}", n.replace('-', "_").to_uppercase()),
            })
            .collect()
    }

    #[test]
    fn secrets_are_scoped_per_tenant() {
        assert_eq!(secret_prefix("acme-weather-2"), "ACME_WEATHER_2__");
        let h = |secret: &str| {
            vec![InjectedHeader {
                name: "x-key".into(),
                secret: secret.into(),
            }]
        };
        assert_eq!(
            check_secret_scope("acme-weather", &h("ACME_WEATHER__API_KEY")),
            Ok(())
        );
        for bad in [
            "PLATFORM_ADMIN_TOKEN",
            "ACME_WEATHER__",
            "ACME_WEATHER_API_KEY",
            "ACME__API_KEY",
            "acme_weather__API_KEY",
            "REGISTRY",
        ] {
            let e = check_secret_scope("acme-weather", &h(bad)).unwrap_err();
            assert_eq!(e.code(), "upstream_credentials_invalid", "{bad}");
        }
        // No tenant's prefix starts another's: "a" cannot read "a-b"'s secrets.
        assert!(check_secret_scope("a", &h("A_B__KEY")).is_err());
        assert!(check_secret_scope("a-b", &h("A_B__KEY")).is_ok());
        assert!(check_secret_scope("a-b", &[]).is_ok());
    }

    proptest::proptest! {
        /// Two different slugs never share a secret: a name in one's scope is not in the other's.
        #[test]
        fn scopes_are_disjoint(a in "[a-z][a-z0-9]{0,3}(-[a-z0-9]{1,3}){0,2}", b in "[a-z][a-z0-9]{0,3}(-[a-z0-9]{1,3}){0,2}", name in "[A-Z][A-Z0-9_]{0,6}") {
            proptest::prop_assume!(a != b);
            let secret = format!("{}{name}", secret_prefix(&a));
            let h = vec![InjectedHeader { name: "x".into(), secret }];
            proptest::prop_assert!(check_secret_scope(&b, &h).is_err());
        }
    }

    #[test]
    fn caller_headers() {
        let injected = inj(&["X-Api-Key", "authorization"]);
        let rules = RequestHeaderRules {
            injected: &injected,
            api_key_header: Some("x-caller-key"),
            transforming: true,
        };
        let caller = [
            ("Accept", "application/json"),
            ("Content-Type", "application/json"),
            ("User-Agent", "agent/1"),
            ("x-api-key", "caller-tries-to-override"),
            ("Authorization", "Bearer caller"),
            ("Cookie", "session=platform"),
            ("Host", "402claw.dev"),
            ("X-PAYMENT", "abc"),
            ("payment-signature", "abc"),
            ("x-claw-tenant", "forged"),
            ("CF-Connecting-IP", "1.2.3.4"),
            ("cf-ipcountry", "FR"),
            ("X-Forwarded-For", "1.2.3.4"),
            ("x-real-ip", "1.2.3.4"),
            ("Forwarded", "for=1.2.3.4"),
            ("Connection", "keep-alive, X-Hop"),
            ("x-hop", "1"),
            ("Transfer-Encoding", "chunked"),
            ("Content-Length", "12"),
            ("X-Caller-Key", "platform-key"),
            ("Range", "bytes=0-1"),
            ("If-Range", "\"e\""),
            ("If-None-Match", "\"e\""),
            ("Accept-Encoding", "zstd"),
        ];
        let resolved = vec![
            ("X-Api-Key".to_owned(), "k-123".to_owned()),
            ("authorization".to_owned(), "Bearer tenant".to_owned()),
        ];
        let got = upstream_request_headers(caller, &rules, &resolved);
        let got: Vec<(&str, &str)> = got.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        assert_eq!(
            got,
            [
                ("Accept", "application/json"),
                ("Content-Type", "application/json"),
                ("User-Agent", "agent/1"),
                ("If-None-Match", "\"e\""),
                ("X-Api-Key", "k-123"),
                ("authorization", "Bearer tenant"),
            ]
        );
        // Without a transform, ranges go through; without injection, the caller's credential does.
        let plain = RequestHeaderRules::default();
        assert!(proxy_request_header("range", &[], &plain));
        assert!(proxy_request_header("authorization", &[], &plain));
        assert!(proxy_request_header("x-api-key", &[], &plain));
        assert!(!proxy_request_header("cookie", &[], &plain));
        assert!(!proxy_request_header("Accept-Encoding", &[], &plain));
    }

    #[test]
    fn caller_authorization_detection() {
        let none = RequestHeaderRules::default();
        assert!(sends_caller_authorization(
            [("Authorization", "Bearer x")],
            &none
        ));
        assert!(!sends_caller_authorization([("accept", "*/*")], &none));
        let injected = inj(&["Authorization"]);
        let rules = RequestHeaderRules {
            injected: &injected,
            ..none
        };
        assert!(!sends_caller_authorization(
            [("authorization", "Bearer tenant")],
            &rules
        ));
    }

    #[test]
    fn injected_secrets_are_resolved_and_checked() {
        let injected = inj(&["x-api-key"]);
        assert_eq!(
            resolve_injected(&injected, |s| (s == "S_X_API_KEY")
                .then(|| "k 1".to_owned())),
            Ok(vec![("x-api-key".to_owned(), "k 1".to_owned())])
        );
        assert_eq!(
            resolve_injected(&injected, |_| None),
            Err(HeaderError::SecretMissing {
                header: "x-api-key".into(),
                secret: "S_X_API_KEY".into()
            })
        );
        for bad in [
            "",
            "a\r\nInjected: 1",
            "a\nb",
            " lead",
            "trail ",
            "caf\u{e9}",
            "\u{0}",
            &"k".repeat(MAX_INJECTED_VALUE_BYTES + 1),
        ] {
            let e = resolve_injected(&injected, |_| Some(bad.to_owned())).unwrap_err();
            assert!(matches!(e, HeaderError::SecretInvalid { .. }), "{bad:?}");
            // The value never appears in the error.
            if bad.len() > 3 {
                assert!(!e.to_string().contains(bad));
            }
        }
        assert_eq!(resolve_injected(&[], |_| None), Ok(vec![]));
    }

    #[test]
    fn upstream_response_headers() {
        let injected = inj(&["X-Api-Key"]);
        let conn = crate::dispatch::connection_tokens(Some("close, X-Upstream-Hop"));
        for keep in [
            "content-type",
            "cache-control",
            "etag",
            "content-length",
            "x-ratelimit-remaining",
            "www-authenticate",
            "location",
            "vary",
        ] {
            assert!(
                proxy_response_header(keep, &conn, &injected, false),
                "{keep}"
            );
        }
        for drop in [
            "Set-Cookie",
            "set-cookie2",
            "Strict-Transport-Security",
            "clear-site-data",
            "alt-svc",
            "NEL",
            "report-to",
            "Transfer-Encoding",
            "connection",
            "x-upstream-hop",
            "x-api-key",
            "X-API-KEY",
            "payment-response",
            "X-Payment-Response",
            "payment-required",
            "x-claw-settled",
        ] {
            assert!(
                !proxy_response_header(drop, &conn, &injected, false),
                "{drop}"
            );
        }
        for rewritten in [
            "content-length",
            "Content-Encoding",
            "etag",
            "content-range",
            "digest",
        ] {
            assert!(
                !proxy_response_header(rewritten, &conn, &injected, true),
                "{rewritten}"
            );
        }
        assert!(proxy_response_header(
            "content-type",
            &conn,
            &injected,
            true
        ));
    }
}
