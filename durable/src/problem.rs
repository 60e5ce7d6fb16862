//! RFC 9457 problem details: the one error shape the platform answers with.
//!
//! Every code the platform can answer with is a variant of [`Code`], listed once in the
//! table below with its HTTP status and its title: a code has exactly one status and one
//! title, fixed here, so no call site can give it another. `detail` explains this
//! occurrence and never carries secrets; `field` names the offending input field.

use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize};

pub const CONTENT_TYPE: &str = "application/problem+json";

macro_rules! codes {
    ($($variant:ident = ($code:literal, $status:literal, $title:literal),)*) => {
        /// A stable, machine-readable problem code (`code` in the JSON).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Code {
            $($variant,)*
        }

        impl Code {
            /// Every code, in table order.
            pub const ALL: &'static [Code] = &[$(Code::$variant,)*];

            /// The code as clients see it (`snake_case`).
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Code::$variant => $code,)*
                }
            }

            /// The HTTP status a problem with this code is answered with.
            pub const fn status(self) -> u16 {
                match self {
                    $(Code::$variant => $status,)*
                }
            }

            /// The problem's title: the same for every occurrence of the code.
            pub const fn title(self) -> &'static str {
                match self {
                    $(Code::$variant => $title,)*
                }
            }

            /// The code named `s`, if the platform has it.
            pub fn parse(s: &str) -> Option<Code> {
                match s {
                    $($code => Some(Code::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

codes! {
    AmbiguousPaymentHeaders = ("ambiguous_payment_headers", 400, "Payment header is invalid"),
    AmountMismatch = ("amount_mismatch", 402, "Payment does not match the offer"),
    AmountOverflow = ("amount_overflow", 422, "Amount overflow"),
    AssetMismatch = ("asset_mismatch", 402, "Payment does not match the offer"),
    AuthorizationExpired = ("authorization_expired", 402, "Payment authorization is outside its validity window"),
    AuthorizationNotYetValid = ("authorization_not_yet_valid", 402, "Payment authorization is outside its validity window"),
    BatchTooLarge = ("batch_too_large", 413, "Too many events in one batch"),
    BodyTooLarge = ("body_too_large", 413, "Request body too large"),
    CostExceedsCapacity = ("cost_exceeds_capacity", 400, "Request cost exceeds the policy's capacity"),
    CounterOverflow = ("counter_overflow", 500, "Counter overflow"),
    DashboardUnavailable = ("dashboard_unavailable", 503, "Dashboard not deployed"),
    DeploymentInvalid = ("deployment_invalid", 400, "Deployment upload is invalid"),
    DeploymentNotFound = ("deployment_not_found", 404, "No deployment"),
    DeploymentNotSupported = ("deployment_not_supported", 409, "This tenant cannot be deployed through the API"),
    DeploymentRejected = ("deployment_rejected", 422, "The Workers platform refused the script"),
    DeploymentTooLarge = ("deployment_too_large", 413, "Deployment upload too large"),
    DeploymentUnavailable = ("deployment_unavailable", 503, "Deployment API unavailable"),
    DeploymentUpstreamFailed = ("deployment_upstream_failed", 502, "The Workers platform API failed"),
    DispatchUnavailable = ("dispatch_unavailable", 503, "Dispatch namespace not bound"),
    EgressFetchFailed = ("egress_fetch_failed", 502, "Outbound request failed"),
    EgressHostNotAllowed = ("egress_host_not_allowed", 403, "Outbound request refused"),
    EgressHostRefused = ("egress_host_refused", 403, "Outbound request refused"),
    EgressInvalidUrl = ("egress_invalid_url", 403, "Outbound request refused"),
    EgressIpLiteralRefused = ("egress_ip_literal_refused", 403, "Outbound request refused"),
    EgressPlatformRefused = ("egress_platform_refused", 403, "Outbound request refused"),
    EgressSchemeRefused = ("egress_scheme_refused", 403, "Outbound request refused"),
    EgressUserinfoRefused = ("egress_userinfo_refused", 403, "Outbound request refused"),
    FacilitatorBadResponse = ("facilitator_bad_response", 502, "Payment facilitator failed"),
    FacilitatorTimeout = ("facilitator_timeout", 504, "Payment facilitator timed out"),
    FacilitatorUnavailable = ("facilitator_unavailable", 502, "Payment facilitator unavailable"),
    Forbidden = ("forbidden", 403, "Not allowed with this key"),
    IdempotencyKeyRequired = ("idempotency_key_required", 400, "Idempotency-Key header required"),
    IdempotencyKeyReused = ("idempotency_key_reused", 422, "Idempotency key reused"),
    InsufficientFunds = ("insufficient_funds", 409, "Insufficient funds"),
    InternalError = ("internal_error", 500, "Internal error"),
    InvalidBody = ("invalid_body", 400, "Invalid request body"),
    InvalidEvent = ("invalid_event", 400, "A usage event is invalid"),
    InvalidField = ("invalid_field", 400, "A field is invalid"),
    InvalidIdempotencyKey = ("invalid_idempotency_key", 400, "Invalid Idempotency-Key"),
    InvalidJson = ("invalid_json", 400, "Body is not valid JSON"),
    InvalidPath = ("invalid_path", 400, "Invalid request URL"),
    InvalidPaymentHeader = ("invalid_payment_header", 400, "Payment header is invalid"),
    InvalidPaymentPayload = ("invalid_payment_payload", 400, "Payment header is invalid"),
    InvalidQuery = ("invalid_query", 400, "Invalid query parameter"),
    InvalidRequest = ("invalid_request", 400, "Request could not be forwarded"),
    InvalidRollup = ("invalid_rollup", 400, "A rollup is invalid"),
    InvalidSignature = ("invalid_signature", 402, "Payment signature is invalid"),
    InvalidSlug = ("invalid_slug", 400, "Invalid tenant slug"),
    InvalidUrl = ("invalid_url", 400, "Invalid request URL"),
    KeyNotFound = ("key_not_found", 404, "Creator key not found"),
    LedgerCorrupt = ("ledger_corrupt", 500, "Ledger corrupt"),
    LedgerUnavailable = ("ledger_unavailable", 503, "Settlement ledger unavailable"),
    MalleableSignature = ("malleable_signature", 402, "Payment signature is invalid"),
    MethodNotAllowed = ("method_not_allowed", 405, "Method not allowed"),
    NetworkMismatch = ("network_mismatch", 402, "Payment does not match the offer"),
    NoEvents = ("no_events", 404, "This object holds no events yet"),
    OfferMisconfigured = ("offer_misconfigured", 500, "Price is misconfigured"),
    OfferMismatch = ("offer_mismatch", 402, "Payment does not match the offer"),
    PathTraversal = ("path_traversal", 400, "Invalid request URL"),
    PaymentAlreadySettled = ("payment_already_settled", 409, "Payment already settled"),
    PaidAnswerNotKept = ("paid_answer_not_kept", 410, "Paid answer not kept"),
    PaymentIdentifierReused = ("payment_identifier_reused", 409, "Payment identifier reused"),
    PaymentOutcomeUnknown = ("payment_outcome_unknown", 409, "Payment outcome unknown"),
    PaymentAlreadyVoided = ("payment_already_voided", 409, "Payment already voided"),
    PaymentHeaderTooLarge = ("payment_header_too_large", 400, "Payment header is invalid"),
    PaymentInFlight = ("payment_in_flight", 409, "Payment in flight"),
    PaymentKeyReused = ("payment_key_reused", 422, "Payment key reused"),
    PaymentNotFound = ("payment_not_found", 404, "Payment not found"),
    PaymentVerificationFailed = ("payment_verification_failed", 402, "Payment was rejected"),
    PaymentsUnavailable = ("payments_unavailable", 503, "Payments are not available"),
    PayoutAlreadyPosted = ("payout_already_posted", 409, "Payout already posted"),
    PayoutAlreadyVoided = ("payout_already_voided", 409, "Payout already voided"),
    PayoutNotFound = ("payout_not_found", 404, "Payout not found"),
    RateLimited = ("rate_limited", 429, "Too many requests"),
    RateLimiterUnavailable = ("rate_limiter_unavailable", 503, "Rate limiter unavailable"),
    RecipientMismatch = ("recipient_mismatch", 402, "Payment does not match the offer"),
    RegistryUnavailable = ("registry_unavailable", 503, "Tenant registry unavailable"),
    RollbackUnavailable = ("rollback_unavailable", 409, "No earlier version to roll back to"),
    RouteNotFound = ("route_not_found", 404, "No such route"),
    SettlementConflict = ("settlement_conflict", 409, "Settlement conflict"),
    SettlementFailed = ("settlement_failed", 402, "Payment settlement failed"),
    SettlementNotRecorded = ("settlement_not_recorded", 502, "Settlement not recorded"),
    SignerMismatch = ("signer_mismatch", 402, "Payment signature is invalid"),
    TenantMismatch = ("tenant_mismatch", 409, "Event belongs to another tenant"),
    TenantNotFound = ("tenant_not_found", 404, "Tenant not found"),
    TenantResponseTooLarge = ("tenant_response_too_large", 502, "Tenant answer too large"),
    TenantSuspended = ("tenant_suspended", 403, "Tenant suspended"),
    TenantTimeout = ("tenant_timeout", 504, "Tenant did not answer in time"),
    TenantWorkerFailed = ("tenant_worker_failed", 502, "Tenant Worker failed"),
    TenantWorkerMissing = ("tenant_worker_missing", 502, "Tenant Worker not deployed"),
    TransactionAlreadyRecorded = ("transaction_already_recorded", 409, "Transaction already recorded"),
    TrendingUnavailable = ("trending_unavailable", 503, "Trending object unavailable"),
    Unauthorized = ("unauthorized", 401, "Missing or wrong bearer token"),
    UnsupportedNetwork = ("unsupported_network", 402, "Payment header is invalid"),
    UnsupportedScheme = ("unsupported_scheme", 402, "Payment header is invalid"),
    UnsupportedX402Version = ("unsupported_x402_version", 402, "Payment header is invalid"),
    UpstreamConfigInvalid = ("upstream_config_invalid", 502, "Upstream not reachable"),
    UpstreamCredentialsInvalid = ("upstream_credentials_invalid", 502, "Upstream credentials misconfigured"),
    UpstreamHostRefused = ("upstream_host_refused", 502, "Upstream not reachable"),
    UpstreamIsPlatform = ("upstream_is_platform", 502, "Upstream not reachable"),
    UpstreamJsonShape = ("upstream_json_shape", 502, "Bad upstream response"),
    UpstreamNotJson = ("upstream_not_json", 502, "Bad upstream response"),
    UpstreamRedirect = ("upstream_redirect", 502, "Bad upstream response"),
    UpstreamResponseInvalid = ("upstream_response_invalid", 502, "Bad upstream response"),
    UpstreamSchemeRefused = ("upstream_scheme_refused", 502, "Upstream not reachable"),
    UpstreamTimeout = ("upstream_timeout", 504, "Upstream timed out"),
    UpstreamTooLarge = ("upstream_too_large", 502, "Bad upstream response"),
    UpstreamUnreachable = ("upstream_unreachable", 502, "Bad upstream response"),
    UpstreamUrlInvalid = ("upstream_url_invalid", 502, "Upstream not reachable"),
    UpstreamUserinfoRefused = ("upstream_userinfo_refused", 502, "Upstream not reachable"),
    UriTooLong = ("uri_too_long", 414, "Invalid request URL"),
    UsageUnavailable = ("usage_unavailable", 503, "Usage data unavailable"),
    X402VersionHeaderMismatch = ("x402_version_header_mismatch", 400, "Payment header is invalid"),
}

impl std::ops::Deref for Code {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<str> for Code {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Code {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Code {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Code::parse(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown problem code {s:?}")))
    }
}

/// A problem. Build it with [`Problem::new`] from its code; the status and the title come
/// from the code (`#[non_exhaustive]`: no other crate can build one with another status).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(from = "ProblemWire")]
#[non_exhaustive]
pub struct Problem {
    pub status: u16,
    pub code: Code,
    pub detail: Option<String>,
    /// The offending input field, for validation errors (`price.payTo`).
    pub field: Option<String>,
}

/// A problem as read from JSON (an object's answer): the status and title are the code's,
/// whatever the JSON says.
#[derive(Deserialize)]
struct ProblemWire {
    code: Code,
    #[serde(default)]
    detail: Option<String>,
    #[serde(default)]
    field: Option<String>,
}

impl From<ProblemWire> for Problem {
    fn from(w: ProblemWire) -> Problem {
        Problem {
            detail: w.detail,
            field: w.field,
            ..Problem::new(w.code)
        }
    }
}

impl Serialize for Problem {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry(
            "type",
            &format!("https://402claw.dev/problems/{}", self.code),
        )?;
        m.serialize_entry("title", self.code.title())?;
        m.serialize_entry("status", &self.status)?;
        m.serialize_entry("code", &self.code)?;
        if let Some(d) = &self.detail {
            m.serialize_entry("detail", d)?;
        }
        if let Some(f) = &self.field {
            m.serialize_entry("field", f)?;
        }
        m.end()
    }
}

impl Problem {
    pub fn new(code: Code) -> Self {
        Problem {
            status: code.status(),
            code,
            detail: None,
            field: None,
        }
    }

    pub fn title(&self) -> &'static str {
        self.code.title()
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    pub fn field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    pub fn to_json(&self) -> String {
        // Serializing a struct of strings and integers cannot fail.
        serde_json::to_string(self).unwrap_or_else(|_| String::from("{}"))
    }

    pub fn invalid_field(field: &str, detail: impl Into<String>) -> Self {
        Problem::new(Code::InvalidField).field(field).detail(detail)
    }

    pub fn internal(detail: impl Into<String>) -> Self {
        Problem::new(Code::InternalError).detail(detail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_rfc9457_fields_and_round_trips() {
        let p = Problem::invalid_field("price.payTo", "must be 0x followed by 40 hex digits");
        let v: serde_json::Value = serde_json::from_str(&p.to_json()).unwrap();
        assert_eq!(v["type"], "https://402claw.dev/problems/invalid_field");
        assert_eq!(v["status"], 400);
        assert_eq!(v["code"], "invalid_field");
        assert_eq!(v["title"], "A field is invalid");
        assert_eq!(v["field"], "price.payTo");
        let back: Problem = serde_json::from_value(v).unwrap();
        assert_eq!(back, p);
    }

    #[test]
    fn every_code_is_unique_snake_case_with_an_error_status_and_a_title() {
        let mut seen = std::collections::HashSet::new();
        for &c in Code::ALL {
            let s = c.as_str();
            assert!(seen.insert(s), "{s} is listed twice");
            assert!(
                !s.is_empty()
                    && s.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{s}"
            );
            assert!((400..=599).contains(&c.status()), "{s}");
            assert!(!c.title().is_empty() && !c.title().ends_with('.'), "{s}");
            assert_eq!(Code::parse(s), Some(c));
        }
        assert_eq!(Code::parse("no_such_code"), None);
    }

    #[test]
    fn an_unknown_code_does_not_deserialize() {
        let v = serde_json::json!({"status": 400, "code": "made_up", "title": "x"});
        assert!(serde_json::from_value::<Problem>(v).is_err());
    }
}
