//! Which headers cross the platform in each direction.

#[cfg(target_arch = "wasm32")]
pub mod edge;

/// Hop-by-hop headers (RFC 9110 7.6.1) never cross a proxy.
use claw_durable::tenant::HOP_BY_HOP_HEADERS as HOP_BY_HOP;

/// Headers the platform consumes or asserts itself. A caller's copy is dropped so a tenant
/// can trust any `x-claw-*` header it receives to come from the platform.
const PLATFORM_REQUEST_HEADERS: &[&str] = &["x-payment", "payment-signature", "host", "cf-worker"];
pub const PLATFORM_HEADER_PREFIX: &str = "x-claw-";

/// Whether a request header goes on to the tenant. `connection_tokens` are the header names
/// the request's own `Connection` header lists, lowercased; they are hop-by-hop too.
pub fn forward_request_header(name: &str, connection_tokens: &[String]) -> bool {
    let name = name.to_ascii_lowercase();
    !(HOP_BY_HOP.contains(&name.as_str())
        || PLATFORM_REQUEST_HEADERS.contains(&name.as_str())
        || name.starts_with(PLATFORM_HEADER_PREFIX)
        || connection_tokens.contains(&name))
}

/// Whether a tenant's response header goes back to the caller.
pub fn forward_response_header(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    !HOP_BY_HOP.contains(&name.as_str())
}

/// The header names a `Connection` header lists.
pub fn connection_tokens(connection: Option<&str>) -> Vec<String> {
    connection
        .unwrap_or("")
        .split(',')
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_headers() {
        let conn = connection_tokens(Some("keep-alive, X-Secret-Hop"));
        for keep in [
            "accept",
            "content-type",
            "authorization",
            "x-api-key",
            "user-agent",
        ] {
            assert!(forward_request_header(keep, &conn), "{keep}");
        }
        for drop in [
            "Connection",
            "transfer-encoding",
            "X-PAYMENT",
            "payment-signature",
            "x-claw-tenant",
            "X-Secret-Hop",
            "host",
        ] {
            assert!(!forward_request_header(drop, &conn), "{drop}");
        }
    }

    #[test]
    fn response_headers() {
        assert!(forward_response_header("content-type"));
        assert!(forward_response_header("cache-control"));
        assert!(!forward_response_header("Transfer-Encoding"));
    }
}
