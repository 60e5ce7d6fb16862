//! Valid events for tests, here and in the trending tests.

use super::*;

/// The tests' clock.
pub const NOW: i64 = 1_700_000_000_000;

pub const SALT: &[u8] = b"test-salt-0123456789";

/// One call attempt. `payer`: which payer paid (settled calls need one). Free tenants only
/// produce `served`, `rate_limited` and `error`.
#[allow(clippy::too_many_arguments)]
pub fn event(
    id: &str,
    tenant: &str,
    time_ms: i64,
    stage: Stage,
    free: bool,
    caller: u32,
    payer: Option<u32>,
    amount: u128,
    self_dealing: bool,
) -> UsageEvent {
    let status_code = match stage {
        Stage::Challenged | Stage::VerifyFailed | Stage::SettlementFailed => 402,
        Stage::RateLimited => 429,
        Stage::Served | Stage::Settled => 200,
        Stage::Error => 502,
    };
    let payer_hash = payer.map(|p| hash_payer(SALT, &format!("0x{p:040x}")));
    UsageEvent {
        id: id.to_owned(),
        time_ms,
        tenant: tenant.to_owned(),
        worker_name: Some(format!("w-{tenant}")),
        route: "/v1/search".into(),
        caller_hash: hash_caller(SALT, &format!("ip:10.0.0.{caller}")),
        stage,
        payment_required: !free,
        payment_success: stage == Stage::Settled,
        settlement_result: match stage {
            Stage::Settled => Some(format!("0x{:064x}", time_ms)),
            Stage::SettlementFailed => Some("insufficient_funds".into()),
            _ => None,
        },
        amount_atomic: (!free).then(|| amount.to_string()),
        status_code,
        error_code: (stage == Stage::Error).then(|| "upstream_failed".into()),
        latency_ms: 12,
        subrequests: Some(1),
        self_dealing: self_dealing && payer_hash.is_some(),
        payer_hash,
        countable: false,
        billable: false,
    }
    .classified()
}

pub fn settled(id: &str, tenant: &str, time_ms: i64, payer: u32, amount: u128) -> UsageEvent {
    event(
        id,
        tenant,
        time_ms,
        Stage::Settled,
        false,
        payer,
        Some(payer),
        amount,
        false,
    )
}
