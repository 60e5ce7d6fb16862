//! The x402 paywall around dispatch, for tenants with a price. The order (see
//! `crate::paywall` for the rules it applies):
//!
//! verifier configured? -> payment header? -> decode + offer match + local checks -> verify
//! -> reserve in the tenant's ledger -> dispatch (buffered, bounded, with a deadline) ->
//! tenant below 400? settle -> post the entry with the transaction -> answer with the
//! payment-response header; every path that does not serve voids the reservation.
//!
//! A free tenant (no price) goes straight to dispatch.

use claw_durable::events::UsageEvent;
use claw_durable::ledger::wire::{
    RecoverRequest, Recovery, ReserveRequest, SettleRequest, StoreAnswerMeta, VoidRequest,
};
use claw_durable::ledger::MAX_STORED_ANSWER_BYTES;
use claw_durable::problem::{Code, Problem};
use claw_durable::tenant::{Price, TenantConfig};
use worker::{Env, Headers, Method, Request, Response, ResponseBuilder, Url};

use crate::bindings::{
    self, ALLOW_LOCAL_X402_VERIFICATION, FACILITATOR_TIMEOUT_MS, FACILITATOR_URL,
};
use crate::dispatch::edge as dispatch;
use crate::facilitator::edge as facilitator;
use crate::facilitator::{
    check_settle_response, check_verify_response, facilitator_request_body, read_settle,
    read_verify, FacilitatorFailure,
};
use crate::http::body::read_response;
use crate::http::deadline::within;
use crate::http::respond;
use crate::ledger::edge::{self as ledger, wire_json, LedgerAnswer};
use crate::limiter::payer_key;
use crate::paywall::{
    self, is_null_body_status, ledger_valid_before, paid_answer_unreadable, recovered,
    reserve_refusal, resource_url, settle_refusal, tenant_timeout, void_reason, Recovered,
    Verifier, CHARGED_HEADER, MAX_PAID_RESPONSE_BYTES, REPLAY_HEADER, TENANT_DEADLINE_MS,
};
use crate::usage::edge::Usage;
use crate::x402::{
    check_payment, decode_payment_header, local_settlement, payment_failure_header,
    payment_response_header, select_payment_header, verify_locally, AcceptedPayment, Offer,
    Settlement, X402Error, X402Version, HEADER_PAYMENT_REQUIRED, HEADER_PAYMENT_SIGNATURE,
    HEADER_X_PAYMENT,
};

/// Browsers may read the x402 headers of a cross-origin answer.
const EXPOSE_HEADERS: &str = "PAYMENT-REQUIRED, PAYMENT-RESPONSE, X-PAYMENT-RESPONSE";
/// Attempts at recording a settlement in the ledger when the object cannot be reached.
const RECORD_ATTEMPTS: usize = 3;

/// Serves a call to a tenant: through the paywall when it has a price, else dispatched.
/// Each payment step is reported to the call's usage record (`usage.record()`); the tenant
/// is dispatched under the call's id (`usage.id()`). `signer`: the payer whose signature
/// the limiter already recovered from this request's payment header (`Admission::signer`).
pub async fn call(
    req: Request,
    env: &Env,
    config: &TenantConfig,
    url: &Url,
    rest: &str,
    usage: &mut Usage,
    signer: Option<&str>,
) -> Result<Response, Problem> {
    match &config.price {
        None => dispatch::to_tenant(req, env, config, url, rest, usage.id()).await,
        Some(price) => {
            let call = PaidCall {
                env,
                config,
                price,
                url,
                rest,
                signer,
            };
            paid_call(req, &call, usage).await
        }
    }
}

/// What a paid call is about, besides its request and its usage record.
struct PaidCall<'a> {
    env: &'a Env,
    config: &'a TenantConfig,
    price: &'a Price,
    url: &'a Url,
    rest: &'a str,
    signer: Option<&'a str>,
}

async fn paid_call(req: Request, c: &PaidCall<'_>, usage: &mut Usage) -> Result<Response, Problem> {
    let PaidCall {
        env,
        config,
        price,
        url,
        rest,
        signer,
    } = *c;
    let verifier = paywall::verifier(
        bindings::var(env, FACILITATOR_URL).as_deref(),
        bindings::var(env, FACILITATOR_TIMEOUT_MS).as_deref(),
        bindings::var(env, ALLOW_LOCAL_X402_VERIFICATION).as_deref(),
    )?;
    let offer = Offer::from_price(price, &resource_url(url), "")
        .map_err(|e| e.to_problem())?
        .with_discovery(crate::discovery::for_call(
            config,
            req.method().as_ref(),
            rest,
        ));

    // 1. The payment header, decoded and matched against the offer.
    let x_payment = req.headers().get(HEADER_X_PAYMENT).ok().flatten();
    let signature = req.headers().get(HEADER_PAYMENT_SIGNATURE).ok().flatten();
    let (version, header) = match select_payment_header(x_payment.as_deref(), signature.as_deref())
    {
        Ok(Some(found)) => found,
        Ok(None) => {
            usage.record().challenged();
            return Ok(challenge(&offer, None));
        }
        Err(e) => return Ok(refuse_recorded(usage, &offer, &e)),
    };
    let payment = match decode_payment_header(version, header) {
        Ok(p) => p,
        Err(e) => return Ok(refuse_recorded(usage, &offer, &e)),
    };
    usage
        .record()
        .payment(&payment.payer().to_lower_hex(), price.amount());
    let now = u64::try_from(respond::now_ms()).unwrap_or(0);

    // 2. Cheap local checks, then verification (local: the signature too).
    // The limiter recovered this header's signer already: the same signature over the same
    // token domain, not recovered twice.
    let signature_checked = signer.is_some_and(|s| s == payment.payer().to_lower_hex());
    let checked = match &verifier {
        Verifier::Local if !signature_checked => verify_locally(&payment, &offer, now),
        Verifier::Local | Verifier::Facilitator { .. } => check_payment(&payment, &offer, now),
    };
    let accepted = match checked {
        Ok(a) => a,
        Err(e) => return Ok(refuse_recorded(usage, &offer, &e)),
    };
    usage
        .record()
        .payment(&accepted.payer.to_lower_hex(), accepted.amount_atomic);
    // A client's payment id (payment-identifier extension) seen before: the payment it
    // named, looked up before the facilitator is asked.
    if let Some(id) = payment.payment_id.as_deref() {
        if let Some(kept) = recover(env, &config.slug, &accepted, version, Some(id)).await {
            return Ok(kept);
        }
    }
    let facilitator_body = facilitator_request_body(&payment, &offer);
    if let Verifier::Facilitator { base, timeout_ms } = &verifier {
        let verified = match facilitator::post(base, "/verify", &facilitator_body, *timeout_ms)
            .await
            .and_then(|(status, body)| read_verify(status, &body))
        {
            Ok(v) => v,
            Err(f) => {
                // A retry of a payment that already paid does not need the facilitator.
                if let Some(kept) = recover(env, &config.slug, &accepted, version, None).await {
                    return Ok(kept);
                }
                return Err(f.to_problem("verify"));
            }
        };
        if let Err(e) = check_verify_response(&verified, &payment) {
            // A retry of a payment that already paid (its nonce is spent, so verify
            // refuses it) gets the answer it paid for.
            if let Some(kept) = recover(env, &config.slug, &accepted, version, None).await {
                return Ok(kept);
            }
            return Ok(refuse_recorded(usage, &offer, &e));
        }
    }

    // The payment is verified: its payer is the caller (the limiter keys it the same way;
    // without limits it was not recovered before).
    usage
        .record()
        .caller(&payer_key(&accepted.payer.to_lower_hex()));

    // 3. Reserve: from here on, every path that does not serve voids.
    let slug = config.slug.as_str();
    let payment_id = payment.payment_id.as_deref();
    if let Err(p) = reserve(env, slug, &accepted, config.plan.fee_bps(), payment_id).await {
        // The same payment again: its kept answer, or why not (in flight, unknown).
        if p.status == 409 {
            if let Some(kept) = recover(env, slug, &accepted, version, None).await {
                return Ok(kept);
            }
        }
        // A payment the ledger refuses (e.g. one already used) failed before dispatch; a
        // ledger that cannot be reached is the platform's error.
        if p.status < 500 {
            usage.record().verify_failed(&p.code);
        }
        return Err(p);
    }

    // 4. Dispatch, buffered.
    let dispatched = dispatch::to_tenant(req, env, config, url, rest, usage.id());
    let answer = match buffered(dispatched).await {
        Ok(TenantAnswer::Served(a)) => a,
        Ok(TenantAnswer::Refused(resp)) => {
            // The reference behaviour: a tenant answer of 400 or more is passed through
            // as it is, and nothing is settled.
            let status = resp.status_code();
            void(
                env,
                slug,
                &accepted,
                &void_reason("tenant_status", &status.to_string()),
            )
            .await;
            return Ok(resp);
        }
        Err(p) => {
            void(env, slug, &accepted, &void_reason("tenant_failed", &p.code)).await;
            return Err(p);
        }
    };

    // 5. Keep the answer for a retry of this payment, then settle. Not kept: not served,
    // not charged (a paid answer must never be lost).
    if let Err(p) = keep_answer(env, slug, &accepted, &answer).await {
        void(env, slug, &accepted, &void_reason("answer", &p.code)).await;
        return Err(p);
    }
    let settlement = match &verifier {
        Verifier::Local => local_settlement(&accepted),
        Verifier::Facilitator { base, timeout_ms } => {
            let settled = facilitator::post(base, "/settle", &facilitator_body, *timeout_ms)
                .await
                .and_then(|(status, body)| read_settle(status, &body));
            let outcome = match settled {
                Ok(s) => check_settle_response(&s, &payment),
                Err(f) => {
                    // The settlement was sent and no usable answer came back: it may have
                    // happened. Only the chain can say: the ledger marks it unknown and
                    // the reconciler decides it.
                    let reason = void_reason("settle", &f.code());
                    mark_unknown(env, slug, &accepted, &reason).await;
                    usage.record().settlement_failed(&f.code());
                    return Ok(settle_failure(&f, version, &accepted));
                }
            };
            match outcome {
                Ok(s) => s,
                // The facilitator says it did not settle: the payment is void.
                Err(e @ X402Error::SettlementFailed { .. }) => {
                    void(env, slug, &accepted, &void_reason("settle", &e.code())).await;
                    usage.record().settlement_failed(settle_reason(&e));
                    return Ok(settle_refused(&offer, version, &accepted, &e));
                }
                // It claims a settlement that does not hold up: whether funds moved is
                // for the chain to say.
                Err(e) => {
                    mark_unknown(env, slug, &accepted, &void_reason("settle", &e.code())).await;
                    usage.record().settlement_failed(settle_reason(&e));
                    return Ok(settle_refused(&offer, version, &accepted, &e));
                }
            }
        }
    };

    // 6. Record, with the call's usage event (the ledger keeps it with the settlement),
    // then answer with the receipt.
    let event = usage.event_for_ledger(&settlement.transaction, answer.status, &answer.headers);
    let fee_bps = config.plan.fee_bps();
    match record(env, slug, &accepted, &settlement, fee_bps, event).await {
        Recorded::Yes => usage.kept_by_ledger(),
        Recorded::Refused(p, reason) => {
            // The ledger refuses this settlement (e.g. a transaction hash that already
            // settled another payment): not a valid settlement, not served.
            void(env, slug, &accepted, &void_reason("record", &reason)).await;
            usage.record().settlement_failed(&reason);
            let mut resp = respond::problem(&p);
            set_failure_header(&mut resp, version, &accepted, &reason);
            return Ok(resp);
        }
        Recorded::Unknown => {
            // Funds moved (or were recorded locally) and the tenant answered: the caller
            // gets what it paid for. The reservation stays reserved; once overdue the
            // ledger marks it unknown and the reconciler books it from the chain. The log
            // line names it.
            worker::console_error!(
                "ledger_record_failed: tenant={slug} key={} tx={}",
                accepted.idempotency_key,
                settlement.transaction
            );
        }
    }
    Ok(answer.into_response(version, &settlement))
}

/// The 402 with the requirements: v1 JSON body and v2 `PAYMENT-REQUIRED` header at once.
fn challenge(offer: &Offer, refusal: Option<&X402Error>) -> Response {
    let c = offer.challenge(refusal);
    let mut r = respond::with_body(402, "application/json", c.body_v1.into_bytes());
    let headers = r.headers_mut();
    let _ = headers.set(HEADER_PAYMENT_REQUIRED, &c.header_v2);
    let _ = headers.set("access-control-expose-headers", EXPOSE_HEADERS);
    r
}

/// [`refuse`], reported to the usage record as a failed verification.
fn refuse_recorded(usage: &mut Usage, offer: &Offer, e: &X402Error) -> Response {
    usage.record().verify_failed(&e.code());
    refuse(offer, e)
}

/// A refused payment: a 402 with fresh requirements when the caller can pay again, else the
/// problem (400 for a header that cannot be read, 5xx for our side or the facilitator's),
/// still carrying the requirements header.
fn refuse(offer: &Offer, e: &X402Error) -> Response {
    if e.status() == 402 {
        return challenge(offer, Some(e));
    }
    let mut resp = respond::problem(&e.to_problem());
    if e.is_caller_error() {
        let _ = resp
            .headers_mut()
            .set(HEADER_PAYMENT_REQUIRED, &offer.challenge(Some(e)).header_v2);
    }
    resp
}

fn set_failure_header(resp: &mut Response, version: X402Version, a: &AcceptedPayment, why: &str) {
    let (name, value) = payment_failure_header(version, a.network, &a.payer, why);
    let _ = resp.headers_mut().set(name, &value);
    let _ = resp
        .headers_mut()
        .set("access-control-expose-headers", EXPOSE_HEADERS);
}

/// The facilitator said no (`success: false`) or settled wrongly: 402 with the failed
/// settlement response and fresh requirements, never the tenant's body.
fn settle_refused(
    offer: &Offer,
    version: X402Version,
    a: &AcceptedPayment,
    e: &X402Error,
) -> Response {
    let mut resp = if e.status() == 402 {
        challenge(offer, Some(e))
    } else {
        respond::problem(&e.to_problem())
    };
    set_failure_header(&mut resp, version, a, settle_reason(e));
    resp
}

/// The facilitator's reason for a failed settlement (opaque), else the refusal's code.
fn settle_reason(e: &X402Error) -> &str {
    match e {
        X402Error::SettlementFailed {
            reason: Some(reason),
        } => reason.as_str(),
        _ => e.code().as_str(),
    }
}

/// The facilitator could not settle (down, slow, garbage): not served.
fn settle_failure(f: &FacilitatorFailure, version: X402Version, a: &AcceptedPayment) -> Response {
    let p = f.to_problem("settle");
    let detail = format!(
        "{}; whether the payment settled is being reconciled against the chain",
        p.detail.clone().unwrap_or_default()
    );
    let mut resp = respond::problem(&p.detail(detail));
    set_failure_header(&mut resp, version, a, &f.code());
    resp
}

async fn reserve(
    env: &Env,
    slug: &str,
    a: &AcceptedPayment,
    fee_bps: u32,
    payment_id: Option<&str>,
) -> Result<(), Problem> {
    let body = wire_json(&ReserveRequest {
        key: a.idempotency_key.clone(),
        fingerprint: a.fingerprint.clone(),
        gross: a.amount_atomic.to_string(),
        network: a.network,
        asset: a.asset.to_lower_hex(),
        payer: a.payer.to_lower_hex(),
        nonce: a.nonce.to_lower_hex(),
        valid_before_s: ledger_valid_before(a.valid_before_s),
        fee_bps,
        payment_id: payment_id.map(str::to_owned),
    });
    let answer = ledger::call(env, slug, Method::Post, "/payments/reserve", Some(body))
        .await
        .map_err(|e| {
            worker::console_error!("reserve: {}", e.0);
            paywall::ledger_unavailable()
        })?;
    if answer.status == 201 {
        return Ok(());
    }
    if answer.status >= 500 {
        worker::console_error!("reserve: ledger answered {}", answer.status);
    }
    Err(reserve_refusal(answer.status, answer.problem()))
}

/// Voids the reservation (the call was not served and nothing was settled). A failure is
/// logged: the reservation then goes overdue, is marked unknown and the chain decides it.
async fn void(env: &Env, slug: &str, a: &AcceptedPayment, reason: &str) {
    close(env, slug, a, "/payments/void", reason).await;
}

/// Marks the reservation unknown (a settlement was sent; its outcome is not known).
async fn mark_unknown(env: &Env, slug: &str, a: &AcceptedPayment, reason: &str) {
    close(env, slug, a, "/payments/unknown", reason).await;
}

async fn close(env: &Env, slug: &str, a: &AcceptedPayment, path: &str, reason: &str) {
    let body = wire_json(&VoidRequest {
        key: a.idempotency_key.clone(),
        reason: reason.to_owned(),
    });
    match ledger::call(env, slug, Method::Post, path, Some(body)).await {
        Ok(LedgerAnswer { status: 200, .. }) => {}
        Ok(other) => worker::console_error!(
            "{path} {}: ledger answered {}",
            a.idempotency_key,
            other.status
        ),
        Err(e) => worker::console_error!("{path} {}: {}", a.idempotency_key, e.0),
    }
}

/// Keeps the buffered answer in the ledger, keyed by the payment, before it is settled.
async fn keep_answer(
    env: &Env,
    slug: &str,
    a: &AcceptedPayment,
    answer: &Buffered,
) -> Result<(), Problem> {
    let fits = answer.body.len() <= MAX_STORED_ANSWER_BYTES;
    let meta = StoreAnswerMeta {
        key: a.idempotency_key.clone(),
        fingerprint: a.fingerprint.clone(),
        status: answer.status,
        headers: answer.headers.clone(),
        body_bytes: u64::try_from(answer.body.len()).unwrap_or(u64::MAX),
        body_stored: fits,
    };
    let body = if fits {
        answer.body.clone()
    } else {
        Vec::new()
    };
    match ledger::call_raw(env, slug, "/payments/answer", Some(&wire_json(&meta)), body).await {
        Ok(r) if r.status == 200 => Ok(()),
        Ok(r) => {
            let code = r.problem().map(|p| p.code);
            worker::console_error!(
                "keep answer {}: ledger answered {} {code:?}",
                a.idempotency_key,
                r.status
            );
            Err(paywall::ledger_unavailable())
        }
        Err(e) => {
            worker::console_error!("keep answer {}: {}", a.idempotency_key, e.0);
            Err(paywall::ledger_unavailable())
        }
    }
}

/// A retry of payment `a` (named by its key, or by the client's payment id): the kept
/// answer with its receipt when the payment settled (asked of the chain first when its
/// outcome was open), or the problem that says why not (an id bound to another payment:
/// 409 `payment_identifier_reused`). `None`: nothing to recover (an unknown id or payment,
/// a voided payment, another payment's key).
async fn recover(
    env: &Env,
    slug: &str,
    a: &AcceptedPayment,
    version: X402Version,
    payment_id: Option<&str>,
) -> Option<Response> {
    let ask = RecoverRequest {
        key: payment_id.is_none().then(|| a.idempotency_key.clone()),
        payment_id: payment_id.map(str::to_owned),
        fingerprint: a.fingerprint.clone(),
    };
    let r = ledger::call_raw(
        env,
        slug,
        "/payments/recover",
        None,
        wire_json(&ask).into_bytes(),
    )
    .await
    .map_err(|e| worker::console_error!("recover {}: {}", a.idempotency_key, e.0))
    .ok()?;
    if r.status != 200 {
        return r
            .problem()
            .filter(|p| p.code == Code::PaymentIdentifierReused)
            .map(|p| respond::problem(&p));
    }
    let rec: Recovery = serde_json::from_str(r.meta.as_deref()?).ok()?;
    match recovered(&rec, a) {
        Recovered::Answer(settlement) => {
            let kept = rec.answer?;
            let answer = Buffered {
                status: kept.status,
                headers: kept.headers,
                body: r.body,
            };
            let mut resp = answer.into_response(version, &settlement);
            let _ = resp.headers_mut().set(REPLAY_HEADER, "true");
            Some(resp)
        }
        Recovered::Refusal(p, settlement) => {
            let mut resp = respond::problem(&p);
            if let Some(s) = settlement {
                let (name, value) = payment_response_header(version, &s);
                let _ = resp.headers_mut().set(name, &value);
                let _ = resp.headers_mut().set(CHARGED_HEADER, "true");
                let _ = resp
                    .headers_mut()
                    .set("access-control-expose-headers", EXPOSE_HEADERS);
            }
            Some(resp)
        }
        Recovered::Nothing => None,
    }
}

enum Recorded {
    Yes,
    /// The answer to give, and the ledger's reason (the payment response's `errorReason`).
    Refused(Problem, Code),
    Unknown,
}

/// Posts the settled entry (fee split at the plan's rate). Retried when the object cannot
/// be reached; settling is idempotent in the ledger (a repeat with the same references is
/// a replay).
async fn record(
    env: &Env,
    slug: &str,
    a: &AcceptedPayment,
    s: &Settlement,
    fee_bps: u32,
    event: Option<UsageEvent>,
) -> Recorded {
    let body = wire_json(&SettleRequest {
        key: a.idempotency_key.clone(),
        tx_ref: s.transaction.clone(),
        network: s.network,
        payer: s.payer.to_checksum(),
        local_settlement: s.local,
        fee_bps,
        event,
    });
    for attempt in 1..=RECORD_ATTEMPTS {
        let sent = Some(body.clone());
        match ledger::call(env, slug, Method::Post, "/payments/settle", sent).await {
            Ok(LedgerAnswer { status: 200, .. }) => return Recorded::Yes,
            Ok(answer) if (400..500).contains(&answer.status) => {
                let ledger_problem = answer.problem();
                let reason = ledger_problem
                    .as_ref()
                    .map_or(Code::SettlementNotRecorded, |p| p.code);
                worker::console_error!("settle {}: ledger refused: {reason}", a.idempotency_key);
                return Recorded::Refused(settle_refusal(ledger_problem.as_ref()), reason);
            }
            Ok(answer) => worker::console_error!(
                "settle {} (attempt {attempt}): ledger answered {}",
                a.idempotency_key,
                answer.status
            ),
            Err(e) => {
                worker::console_error!("settle {} (attempt {attempt}): {}", a.idempotency_key, e.0)
            }
        }
    }
    Recorded::Unknown
}

/// The tenant's answer below 400, fully read.
struct Buffered {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Buffered {
    /// The tenant's answer with the receipt headers added.
    fn into_response(self, version: X402Version, settlement: &Settlement) -> Response {
        let headers = Headers::new();
        for (name, value) in &self.headers {
            // The body is re-sent whole; the runtime sets its length.
            if !name.eq_ignore_ascii_case("content-length") {
                let _ = headers.append(name, value);
            }
        }
        let (name, value) = payment_response_header(version, settlement);
        let _ = headers.set(name, &value);
        let _ = headers.set(CHARGED_HEADER, "true");
        let _ = headers.set("access-control-expose-headers", EXPOSE_HEADERS);
        let builder = ResponseBuilder::new()
            .with_status(self.status)
            .with_headers(headers);
        if is_null_body_status(self.status) {
            builder.empty()
        } else {
            builder.fixed(self.body)
        }
    }
}

enum TenantAnswer {
    /// Below 400, buffered: to be settled.
    Served(Buffered),
    /// 400 or more: passed through unsettled, streamed.
    Refused(Response),
}

/// Awaits the tenant's answer (`dispatched`) and buffers it, within
/// [`TENANT_DEADLINE_MS`] and [`MAX_PAID_RESPONSE_BYTES`].
async fn buffered(
    dispatched: impl std::future::Future<Output = Result<Response, Problem>>,
) -> Result<TenantAnswer, Problem> {
    let work = async {
        let resp = dispatched.await?;
        let status = resp.status_code();
        if status >= 400 {
            return Ok(TenantAnswer::Refused(resp));
        }
        let headers: Vec<(String, String)> = resp.headers().entries().collect();
        let body = read_response(&resp, MAX_PAID_RESPONSE_BYTES)
            .await
            .map_err(paid_answer_unreadable)?;
        Ok(TenantAnswer::Served(Buffered {
            status,
            headers,
            body,
        }))
    };
    within(u64::from(TENANT_DEADLINE_MS), work)
        .await
        .unwrap_or_else(|_| Err(tenant_timeout()))
}
