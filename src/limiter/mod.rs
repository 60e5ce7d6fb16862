//! The rate-limit step of a tenant call, as pure rules: who the caller is, which limiter
//! objects to ask, and what their answers mean for the request. The Worker glue
//! (`edge/limit.rs`) reads the headers, asks the objects and applies the [`Verdict`].
//!
//! # Order
//!
//! The per-caller limit is asked first; the tenant's global limit only when the caller was
//! admitted. Asking both at once would save one round trip on admitted calls, but a caller
//! hammering past its own limit would then spend the tenant's global allowance on requests
//! that are refused anyway, and one abusive caller could starve everyone else. Asked in
//! order, refused callers never touch the global objects. The price: a caller admission
//! followed by a global refusal is not refunded (the caller's own allowance pays for the
//! refused request; the limiter has no "undo", and an undo racing other admissions could
//! over-admit).
//!
//! # Global limit
//!
//! Sharded over [`global_shard_count`] objects (about one per 500 admitted requests per
//! second), each holding an exact share of the limit and of the burst; requests go round
//! robin over the shards (a per-isolate counter). It never over-admits; it may refuse early
//! by up to one shard's share (see `claw_durable::limiter::shard`). The global burst is the
//! tenant's `burst`, the same allowance as per caller, split over the shards.
//!
//! # Failure
//!
//! An object that cannot be asked (binding missing, stub or fetch error, a non-200 answer)
//! is handled by the tenant's [`FailureMode`]: closed refuses the call with 503
//! `rate_limiter_unavailable`; open skips that limit (its headers are left out).

#[cfg(target_arch = "wasm32")]
pub mod edge;

use claw_durable::limiter::headers::{ratelimit, ratelimit_policy, retry_after};
use claw_durable::limiter::identity::{caller_key, caller_object_name, global_object_name};
use claw_durable::limiter::shard::{global_shard_count, global_shard_policy, shard_for_sequence};
use claw_durable::limiter::{caller_policy, CheckRequest, Decision, LimiterError};
use claw_durable::problem::{Code, Problem};
use claw_durable::tenant::{FailureMode, Price, Rate, TenantConfig};

use crate::x402::eip712::verify_authorization_signature;
use crate::x402::{decode_payment_header, select_payment_header, Offer};

pub const HEADER_RATELIMIT_POLICY: &str = "RateLimit-Policy";
pub const HEADER_RATELIMIT: &str = "RateLimit";
pub const HEADER_RETRY_AFTER: &str = "Retry-After";
/// The client's address, as Cloudflare's edge sets it (a client cannot forge it there).
pub const HEADER_CONNECTING_IP: &str = "cf-connecting-ip";

/// Every request is one unit.
const COST: u32 = 1;

/// The request header values caller identity reads.
#[derive(Debug, Clone, Copy, Default)]
pub struct CallerHeaders<'a> {
    pub x_payment: Option<&'a str>,
    pub payment_signature: Option<&'a str>,
    /// The value of the tenant's `apiKeyHeader`, if it names one and the request has it.
    pub api_key: Option<&'a str>,
    pub connecting_ip: Option<&'a str>,
}

/// The caller's limiter key, the first that applies:
/// - a paid tenant's call with one payment header that decodes and whose EIP-712 signature
///   recovers to its `from` (checked locally with secp256k1, no network): `payer:0x...`. A
///   header whose signature does not recover to `from` (made up, tampered, for another
///   token) is ignored here, so the next rule applies: inventing a payer per request cannot
///   mint a fresh limit. A free tenant never reads payment headers at all;
/// - the tenant's `apiKeyHeader`, when configured and present: `key:<sha256>`;
/// - `cf-connecting-ip`: `ip:<address>` (IPv6 by /64);
/// - `anon`, shared by everyone without any of these.
///
/// Only the signature is checked here (the limiter runs before the paywall, so that refused
/// requests never reach the facilitator): amount, recipient and window are the paywall's.
/// A payer is whoever holds the key: a caller with many funded keys has many limits, as
/// it would with many IPs; the global limit bounds them all. API keys are the tenant's to
/// check.
pub fn identify(config: &TenantConfig, h: &CallerHeaders<'_>) -> String {
    identify_signed(config, h).0
}

/// [`identify`], and the payer whose signature was recovered (lowercase hex), if any: the
/// paywall's local verifier need not recover it again.
pub fn identify_signed(config: &TenantConfig, h: &CallerHeaders<'_>) -> (String, Option<String>) {
    let payer = match &config.price {
        Some(price) => signed_payer(price, h),
        None => None,
    };
    let key = caller_key(payer.as_deref(), api_key(config, h), h.connecting_ip);
    (key, payer)
}

/// [`identify`] without reading payment headers (no signature recovered): for the usage
/// record of a tenant without limits, which learns a paid caller's payer from the paywall
/// once the payment is verified ([`payer_key`]).
pub fn identify_unpaid(config: &TenantConfig, h: &CallerHeaders<'_>) -> String {
    caller_key(None, api_key(config, h), h.connecting_ip)
}

/// The caller key of a verified payer.
pub fn payer_key(payer: &str) -> String {
    caller_key(Some(payer), None, None)
}

fn api_key<'a>(config: &TenantConfig, h: &CallerHeaders<'a>) -> Option<&'a str> {
    if config.api_key_header.is_some() {
        h.api_key
    } else {
        None
    }
}

/// The resource URL of the offer built only for its EIP-712 domain.
const DOMAIN_ONLY_RESOURCE: &str = "https://limiter.internal/";

/// The payer of a payment header whose signature recovers to its `from` under the token's
/// EIP-712 domain (the tenant's price names the token, its network and domain).
fn signed_payer(price: &Price, h: &CallerHeaders<'_>) -> Option<String> {
    let (version, value) = select_payment_header(h.x_payment, h.payment_signature).ok()??;
    let payment = decode_payment_header(version, value).ok()?;
    // Only the token's EIP-712 domain matters here; the offer's resource URL does not.
    let offer = Offer::from_price(price, DOMAIN_ONLY_RESOURCE, "").ok()?;
    verify_authorization_signature(&offer, &payment.authorization, &payment.signature).ok()?;
    Some(payment.payer().to_lower_hex())
}

/// One limiter object to ask: its name and the `POST /check` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub object: String,
    pub request: CheckRequest,
}

/// Which limit refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Caller,
    Global,
}

/// What asking one object gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checked {
    Decided(Decision),
    /// The object could not be asked (the glue logs why).
    Failed,
}

/// The checks one request needs, for a tenant with a rate-limit policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitPlan {
    pub caller_key: String,
    pub caller: Option<Check>,
    pub global: Option<Check>,
    pub failure_mode: FailureMode,
    caller_rate: Option<Rate>,
    global_rate: Option<Rate>,
}

/// Whether the tenant has any limit; without one the step asks no object and reads no
/// header.
pub fn applies(config: &TenantConfig) -> bool {
    config.rate_limit.per_caller.is_some() || config.rate_limit.global.is_some()
}

/// The refusal of a call whose limiter could not be asked, for a tenant failing closed.
pub fn unavailable(caller_key: String) -> Refusal {
    Refusal {
        caller_key,
        reason: RefusalReason::Unavailable,
        problem: Problem::new(Code::RateLimiterUnavailable).detail(
            "the rate limiter could not be reached and this tenant fails closed; retry shortly",
        ),
        headers: Vec::new(),
    }
}

/// A policy the limiter cannot run (which a validated config never has; [`plan`] said
/// so): the tenant's failure mode decides, as for an object that cannot be reached. Open
/// admits without any limit's headers; closed refuses with 503.
pub fn unusable_policy(config: &TenantConfig, caller_key: String) -> Verdict {
    match config.limiter_failure_mode() {
        FailureMode::Open => Verdict::Admit(Admission {
            caller_key: Some(caller_key),
            signer: None,
            headers: Vec::new(),
        }),
        FailureMode::Closed => Verdict::Refuse(unavailable(caller_key)),
    }
}

/// The checks for one request of `caller_key`; `None` when the tenant has no limit (then
/// no object is asked at all). `seq` picks the global shard (round robin). An error means
/// a policy the limiter cannot run, which a validated config never has; the glue treats
/// it as a limiter failure.
pub fn plan(
    config: &TenantConfig,
    caller_key: String,
    seq: u64,
) -> Result<Option<LimitPlan>, LimiterError> {
    let policy = &config.rate_limit;
    if !applies(config) {
        return Ok(None);
    }
    let slug = &config.slug;
    let caller = caller_policy(policy)?.map(|p| {
        let object = caller_object_name(slug, &caller_key);
        Check {
            request: CheckRequest::new(object.clone(), &p, COST),
            object,
        }
    });
    let global = match &policy.global {
        Some(rate) => {
            let shards = global_shard_count(rate);
            let shard = shard_for_sequence(seq, shards);
            let p = global_shard_policy(rate, policy.burst.unwrap_or(0), shards, shard)?;
            let object = global_object_name(slug, shard);
            Some(Check {
                request: CheckRequest::new(object.clone(), &p, COST),
                object,
            })
        }
        None => None,
    };
    Ok(Some(LimitPlan {
        caller_key,
        caller,
        global,
        failure_mode: config.limiter_failure_mode(),
        caller_rate: policy.per_caller,
        global_rate: policy.global,
    }))
}

/// An admitted call: the headers every response to it carries, whatever it is (the
/// tenant's answer, a 402, a platform problem).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Admission {
    /// `None` when the tenant has no limit (the limiter was skipped).
    pub caller_key: Option<String>,
    /// The payer (lowercase hex) whose EIP-712 signature identifying the caller recovered,
    /// if one did: the paywall's local verifier does not recover it a second time.
    pub signer: Option<String>,
    pub headers: Vec<(&'static str, String)>,
}

/// Why a call was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalReason {
    /// 429: a limit is used up.
    RateLimited(Scope),
    /// 503: a limiter object could not be asked and the tenant fails closed.
    Unavailable,
}

/// A refused call: the problem to answer with, and its headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub caller_key: String,
    pub reason: RefusalReason,
    pub problem: Problem,
    pub headers: Vec<(&'static str, String)>,
}

/// The step's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Admit(Admission),
    Refuse(Refusal),
}

fn decided(c: Option<&Checked>) -> Option<&Decision> {
    match c {
        Some(Checked::Decided(d)) => Some(d),
        _ => None,
    }
}

impl LimitPlan {
    /// Whether to ask the global limit after the caller limit answered `caller`: only if
    /// there is one and the call is still on (the caller was admitted, or its object failed
    /// and the tenant fails open).
    pub fn wants_global(&self, caller: Option<&Checked>) -> bool {
        self.global.is_some()
            && match caller {
                None => true,
                Some(Checked::Decided(d)) => d.allowed,
                Some(Checked::Failed) => self.failure_mode == FailureMode::Open,
            }
    }

    /// The verdict from what the objects answered (`None`: not asked).
    pub fn verdict(&self, caller: Option<Checked>, global: Option<Checked>) -> Verdict {
        let failed = |c: Option<Checked>| c == Some(Checked::Failed);
        if self.failure_mode == FailureMode::Closed && (failed(caller) || failed(global)) {
            return Verdict::Refuse(unavailable(self.caller_key.clone()));
        }
        let (c, g) = (decided(caller.as_ref()), decided(global.as_ref()));
        let headers = self.headers(c, g);
        let refused_by = match (c, g) {
            (Some(d), _) if !d.allowed => Some((Scope::Caller, self.caller_rate)),
            (_, Some(d)) if !d.allowed => Some((Scope::Global, self.global_rate)),
            _ => None,
        };
        let Some((scope, rate)) = refused_by else {
            return Verdict::Admit(Admission {
                caller_key: Some(self.caller_key.clone()),
                signer: None,
                headers,
            });
        };
        let mut headers = headers;
        let retry = retry_after(c, g).unwrap_or_else(|| "1".to_owned());
        let whose = match scope {
            Scope::Caller => "this caller's",
            Scope::Global => "the tenant's global",
        };
        let quota = rate.map_or_else(String::new, |r| {
            format!(" of {} requests per {} s", r.limit, r.window_s)
        });
        let detail = format!("{whose} rate limit{quota} is used up; retry after {retry} s");
        headers.push((HEADER_RETRY_AFTER, retry));
        Verdict::Refuse(Refusal {
            caller_key: self.caller_key.clone(),
            reason: RefusalReason::RateLimited(scope),
            problem: Problem::new(Code::RateLimited).detail(detail),
            headers,
        })
    }

    /// `RateLimit-Policy` and `RateLimit` for the limits that decided (a limit whose object
    /// failed open, or that was not asked, is left out of both).
    fn headers(&self, c: Option<&Decision>, g: Option<&Decision>) -> Vec<(&'static str, String)> {
        let policy = ratelimit_policy(
            self.caller_rate.as_ref().filter(|_| c.is_some()),
            self.global_rate.as_ref().filter(|_| g.is_some()),
        );
        let mut out = Vec::with_capacity(3);
        if let (Some(policy), Some(current)) = (policy, ratelimit(c, g)) {
            out.push((HEADER_RATELIMIT_POLICY, policy));
            out.push((HEADER_RATELIMIT, current));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use claw_durable::limiter::shard::MAX_GLOBAL_SHARDS;
    use proptest::prelude::*;

    use crate::x402::evm::Address;
    use crate::x402::testkit::{b64, v1_json, TestSigner};

    fn config(extra: &str) -> TenantConfig {
        let body =
            format!(r#"{{"resourceType":"function","workerName":"w","plan":"free"{extra}}}"#);
        TenantConfig::parse(body.as_bytes(), "acme").unwrap()
    }

    const PRICE: &str = r#","price":{"amountAtomic":"1000","network":"base-sepolia",
        "asset":"0x036CbD53842c5426634e7929541eC2318f3dCF7e",
        "payTo":"0x1111111111111111111111111111111111111111"}"#;

    /// A v1 `X-PAYMENT` for the test price, signed by `signer` (or, with `claimed`, naming
    /// another `from` than the one who signed: a made-up payer).
    fn v1_header(signer: &TestSigner, claimed: Option<Address>) -> String {
        let price = config(PRICE).price.unwrap();
        let offer = Offer::from_price(&price, DOMAIN_ONLY_RESOURCE, "").unwrap();
        let mut a = signer.authorization(&offer, 1_900_000_000, 7);
        let sig = signer.sign_authorization(&offer, &a);
        if let Some(from) = claimed {
            a.from = from;
        }
        b64(&v1_json(&offer, &a, &sig).to_string())
    }

    fn decision(allowed: bool, remaining: u32, retry_ms: Option<u64>) -> Decision {
        Decision {
            allowed,
            limit: 10,
            remaining,
            reset_after_ms: 9_000,
            refill_after_ms: 1_500,
            retry_after_ms: retry_ms,
        }
    }

    fn header<'a>(h: &'a [(&'static str, String)], name: &str) -> Option<&'a str> {
        h.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }

    #[test]
    fn an_unusable_policy_follows_the_failure_mode() {
        let limit = r#","rateLimit":{"perCaller":"5/10s"}"#;
        // Free tenants fail open by default, paid ones closed; either can be set.
        let open = unusable_policy(&config(limit), "ip:192.0.2.1".into());
        assert!(
            matches!(open, Verdict::Admit(Admission { ref headers, .. }) if headers.is_empty())
        );
        let closed = unusable_policy(&config(&format!("{PRICE}{limit}")), "anon".into());
        match closed {
            Verdict::Refuse(r) => assert_eq!(
                (r.problem.status, &*r.problem.code),
                (503, "rate_limiter_unavailable")
            ),
            Verdict::Admit(_) => panic!("a paid tenant fails closed"),
        }
        let forced = r#","rateLimit":{"perCaller":"5/10s","onLimiterFailure":"closed"}"#;
        assert!(matches!(
            unusable_policy(&config(forced), "anon".into()),
            Verdict::Refuse(_)
        ));
    }

    /// A request carrying a payment, an API key and a connecting IP.
    fn every_header(payment: &str) -> CallerHeaders<'_> {
        CallerHeaders {
            x_payment: Some(payment),
            api_key: Some("k1"),
            connecting_ip: Some("192.0.2.1"),
            ..Default::default()
        }
    }

    #[test]
    fn paid_call_is_keyed_by_the_payer_whose_signature_recovers() {
        let paid = config(&format!(r#"{PRICE},"apiKeyHeader":"x-api-key""#));
        let alice = TestSigner::alice();
        let header = v1_header(&alice, None);
        let h = every_header(&header);
        assert_eq!(
            identify(&paid, &h),
            format!("payer:{}", alice.address().to_lower_hex())
        );
        // A made-up payer (the signature does not recover to `from`) is ignored: the API
        // key, then the IP, as if there were no payment header.
        let invented = Address::parse("0x2222222222222222222222222222222222222222").unwrap();
        let forged = v1_header(&alice, Some(invented));
        let made_up = CallerHeaders {
            x_payment: Some(&forged),
            ..h
        };
        assert!(identify(&paid, &made_up).starts_with("key:"));
        let no_key = CallerHeaders {
            api_key: None,
            ..made_up
        };
        assert_eq!(identify(&paid, &no_key), "ip:192.0.2.1");
        // Undecodable or ambiguous payment headers fall through to the API key, then the IP.
        let junk = CallerHeaders {
            x_payment: Some("bm90IGpzb24="),
            ..h
        };
        assert!(identify(&paid, &junk).starts_with("key:"));
        let both = CallerHeaders {
            payment_signature: Some(&header),
            api_key: None,
            ..h
        };
        assert_eq!(identify(&paid, &both), "ip:192.0.2.1");
    }

    #[test]
    fn free_tenants_ignore_payment_headers_and_unconfigured_api_keys() {
        let header = v1_header(&TestSigner::alice(), None);
        let h = every_header(&header);
        assert_eq!(identify(&config(""), &h), "ip:192.0.2.1");
        let keyed = config(r#","apiKeyHeader":"x-api-key""#);
        assert_eq!(
            identify(&keyed, &h),
            caller_key(None, Some("k1"), None),
            "hashed, never raw"
        );
        assert_eq!(identify(&config(""), &CallerHeaders::default()), "anon");
    }

    #[test]
    fn no_policy_no_plan() {
        assert_eq!(plan(&config(""), "ip:192.0.2.1".into(), 0), Ok(None));
        let only_failure_mode = config(r#","rateLimit":{"onLimiterFailure":"open"}"#);
        assert_eq!(plan(&only_failure_mode, "anon".into(), 0), Ok(None));
    }

    #[test]
    fn plan_names_objects_and_policies() {
        let c = config(r#","rateLimit":{"perCaller":"100/60s","global":"10000/1h","burst":20}"#);
        let p = plan(&c, "ip:192.0.2.1".into(), 7).unwrap().unwrap();
        let caller = p.caller.as_ref().unwrap();
        assert_eq!(caller.object, "acme/caller/ip:192.0.2.1");
        assert_eq!(
            caller.request,
            CheckRequest {
                key: "acme/caller/ip:192.0.2.1".into(),
                limit: 100,
                window_s: 60,
                burst: 20,
                cost: 1
            }
        );
        // 10,000/h is one shard holding the whole limit and the tenant's burst.
        let global = p.global.as_ref().unwrap();
        assert_eq!(global.object, "acme/global/0");
        assert_eq!(
            (
                global.request.limit,
                global.request.window_s,
                global.request.burst
            ),
            (10_000, 3_600, 20)
        );
        assert_eq!(p.failure_mode, FailureMode::Open, "free tenant default");
        let paid = config(&format!(r#"{PRICE},"rateLimit":{{"global":"10/1s"}}"#));
        let p = plan(&paid, "anon".into(), 0).unwrap().unwrap();
        assert_eq!(p.caller, None);
        assert_eq!(p.failure_mode, FailureMode::Closed, "paid tenant default");
    }

    #[test]
    fn global_shards_go_round_robin_and_split_the_limit() {
        let c = config(r#","rateLimit":{"perCaller":"10/1s","global":"2000/1s","burst":9}"#);
        let shards = global_shard_count(&Rate::new(2_000, 1).unwrap());
        assert_eq!(shards, 4);
        let mut limit_sum = 0;
        let mut burst_sum = 0;
        for seq in 0..u64::from(shards) {
            let p = plan(&c, "anon".into(), seq).unwrap().unwrap();
            let g = p.global.unwrap();
            assert_eq!(g.object, format!("acme/global/{seq}"));
            limit_sum += g.request.limit;
            burst_sum += g.request.burst;
        }
        assert_eq!((limit_sum, burst_sum), (2_000, 9));
        let p = plan(&c, "anon".into(), u64::MAX).unwrap().unwrap();
        let idx: u32 = p
            .global
            .unwrap()
            .object
            .rsplit('/')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(idx, (u64::MAX % u64::from(shards)) as u32);
        assert!(shards <= MAX_GLOBAL_SHARDS);
    }

    fn both() -> LimitPlan {
        let c = config(r#","rateLimit":{"perCaller":"10/60s","global":"1000/1h","burst":2}"#);
        plan(&c, "ip:192.0.2.1".into(), 0).unwrap().unwrap()
    }

    #[test]
    fn global_is_asked_only_while_the_call_is_on() {
        let p = both();
        assert!(p.wants_global(Some(&Checked::Decided(decision(true, 1, None)))));
        assert!(!p.wants_global(Some(&Checked::Decided(decision(false, 0, Some(5))))));
        assert!(p.wants_global(Some(&Checked::Failed)), "free: open");
        let mut closed = both();
        closed.failure_mode = FailureMode::Closed;
        assert!(!closed.wants_global(Some(&Checked::Failed)));
        let c = config(r#","rateLimit":{"perCaller":"10/60s"}"#);
        let only_caller = plan(&c, "anon".into(), 0).unwrap().unwrap();
        assert!(!only_caller.wants_global(Some(&Checked::Decided(decision(true, 1, None)))));
        let c = config(r#","rateLimit":{"global":"10/60s"}"#);
        let only_global = plan(&c, "anon".into(), 0).unwrap().unwrap();
        assert!(only_global.wants_global(None));
    }

    #[test]
    fn admission_carries_both_fields() {
        let p = both();
        let v = p.verdict(
            Some(Checked::Decided(decision(true, 2, None))),
            Some(Checked::Decided(decision(true, 0, None))),
        );
        let Verdict::Admit(a) = v else {
            panic!("{v:?}")
        };
        assert_eq!(a.caller_key.as_deref(), Some("ip:192.0.2.1"));
        assert_eq!(
            header(&a.headers, HEADER_RATELIMIT_POLICY),
            Some(r#""caller";q=10;w=60, "global";q=1000;w=3600"#)
        );
        assert_eq!(
            header(&a.headers, HEADER_RATELIMIT),
            Some(r#""caller";r=2;t=2, "global";r=0;t=2"#)
        );
        assert_eq!(header(&a.headers, HEADER_RETRY_AFTER), None);
    }

    #[test]
    fn caller_refusal_is_a_429_with_retry_after() {
        let p = both();
        let v = p.verdict(
            Some(Checked::Decided(decision(false, 0, Some(4_001)))),
            None,
        );
        let Verdict::Refuse(r) = v else {
            panic!("{v:?}")
        };
        assert_eq!(r.reason, RefusalReason::RateLimited(Scope::Caller));
        assert_eq!((r.problem.status, &*r.problem.code), (429, "rate_limited"));
        assert_eq!(r.caller_key, "ip:192.0.2.1");
        assert_eq!(header(&r.headers, HEADER_RETRY_AFTER), Some("5"));
        assert_eq!(
            header(&r.headers, HEADER_RATELIMIT_POLICY),
            Some(r#""caller";q=10;w=60"#)
        );
        assert_eq!(
            header(&r.headers, HEADER_RATELIMIT),
            Some(r#""caller";r=0;t=2"#)
        );
        assert!(r.problem.detail.unwrap().contains("10 requests per 60 s"));
    }

    #[test]
    fn global_refusal_names_the_global_limit() {
        let p = both();
        let v = p.verdict(
            Some(Checked::Decided(decision(true, 1, None))),
            Some(Checked::Decided(decision(false, 0, Some(300)))),
        );
        let Verdict::Refuse(r) = v else {
            panic!("{v:?}")
        };
        assert_eq!(r.reason, RefusalReason::RateLimited(Scope::Global));
        assert_eq!(header(&r.headers, HEADER_RETRY_AFTER), Some("1"));
        assert!(header(&r.headers, HEADER_RATELIMIT)
            .unwrap()
            .contains(r#""global";r=0"#));
        assert!(r.problem.detail.unwrap().contains("global"));
    }

    #[test]
    fn failures_follow_the_failure_mode() {
        // Open (free default): a failed limit is skipped, the other still decides.
        let open = both();
        let v = open.verdict(
            Some(Checked::Failed),
            Some(Checked::Decided(decision(true, 3, None))),
        );
        let Verdict::Admit(a) = v else {
            panic!("{v:?}")
        };
        assert_eq!(
            header(&a.headers, HEADER_RATELIMIT_POLICY),
            Some(r#""global";q=1000;w=3600"#)
        );
        let v = open.verdict(Some(Checked::Failed), Some(Checked::Failed));
        assert_eq!(
            v,
            Verdict::Admit(Admission {
                caller_key: Some("ip:192.0.2.1".into()),
                signer: None,
                headers: vec![]
            })
        );
        let v = open.verdict(
            Some(Checked::Failed),
            Some(Checked::Decided(decision(false, 0, Some(10)))),
        );
        assert!(matches!(
            v,
            Verdict::Refuse(Refusal {
                reason: RefusalReason::RateLimited(Scope::Global),
                ..
            })
        ));
        // Closed: any failure is a 503, even when the other limit admitted.
        let mut closed = both();
        closed.failure_mode = FailureMode::Closed;
        for (c, g) in [
            (Some(Checked::Failed), None),
            (
                Some(Checked::Decided(decision(true, 1, None))),
                Some(Checked::Failed),
            ),
        ] {
            let Verdict::Refuse(r) = closed.verdict(c, g) else {
                panic!("closed must refuse")
            };
            assert_eq!(r.reason, RefusalReason::Unavailable);
            assert_eq!(
                (r.problem.status, &*r.problem.code),
                (503, "rate_limiter_unavailable")
            );
            assert!(r.headers.is_empty());
        }
    }

    /// Not asked, failed, or decided (allowed, remaining, retry ms when refused).
    fn checked() -> impl Strategy<Value = Option<Checked>> {
        let decided = (any::<bool>(), 0u32..5, 1u64..100_000).prop_map(|(allowed, r, t)| {
            Checked::Decided(decision(allowed, r, (!allowed).then_some(t)))
        });
        proptest::option::of(prop_oneof![Just(Checked::Failed), decided])
    }

    proptest! {
        /// Whatever the objects answer, a call is admitted only if no decision refused it
        /// and (when closed) no object failed; a 429 always has a Retry-After >= 1.
        #[test]
        fn verdicts_are_consistent(c in checked(), g in checked(), closed in any::<bool>()) {
            let mut p = both();
            if closed {
                p.failure_mode = FailureMode::Closed;
            }
            let refused = [c, g]
                .iter()
                .any(|x| matches!(x, Some(Checked::Decided(d)) if !d.allowed));
            let failed = [c, g].contains(&Some(Checked::Failed));
            match p.verdict(c, g) {
                Verdict::Admit(a) => {
                    prop_assert!(!refused);
                    prop_assert!(!(closed && failed));
                    prop_assert_eq!(
                        header(&a.headers, HEADER_RATELIMIT_POLICY).is_some(),
                        header(&a.headers, HEADER_RATELIMIT).is_some()
                    );
                }
                Verdict::Refuse(r) => match r.reason {
                    RefusalReason::RateLimited(_) => {
                        prop_assert!(refused);
                        let retry: u64 = header(&r.headers, HEADER_RETRY_AFTER)
                            .unwrap()
                            .parse()
                            .unwrap();
                        prop_assert!(retry >= 1);
                        prop_assert_eq!(r.problem.status, 429);
                    }
                    RefusalReason::Unavailable => prop_assert!(closed && failed),
                },
            }
        }
    }
}
