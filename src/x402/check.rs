//! Matching a decoded payment against the tenant's offer: the cheap local checks done
//! before any network call, and the full local verification for development.
//!
//! Amount rule: the authorization's `value` must equal the price exactly, for v1 and v2.
//! The v2 spec says so; the v1 `exact` text says "enough to cover", but the reference
//! facilitator rejects any v1 value other than `maxAmountRequired` too, clients sign exactly
//! that, and the ledger books the price: accepting more would only strand overpayments.

use super::eip712::verify_authorization_signature;
use super::error::X402Error;
use super::evm::{parse_u128_dec, Address, B256};
use super::identity::{idempotency_key, payment_fingerprint};
use super::offer::Offer;
use super::payment::{AcceptedV2, PaymentPayload};
use super::X402Version;
use claw_durable::tenant::Network;

/// An authorization must stay valid this long past `now` to be accepted: settling takes a
/// block or two (the reference facilitator uses the same margin).
pub const VALID_BEFORE_MARGIN_S: u64 = 6;

/// A payment that passed the local checks: what the paywall books and settles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptedPayment {
    pub version: X402Version,
    pub network: Network,
    pub asset: Address,
    pub payer: Address,
    pub pay_to: Address,
    pub amount_atomic: u128,
    pub nonce: B256,
    pub valid_before_s: u64,
    /// The ledger's idempotency key: see [`idempotency_key`].
    pub idempotency_key: String,
    /// Identifies this exact signed payment: see [`payment_fingerprint`].
    pub fingerprint: String,
}

/// The checks that need no network: network and asset, recipient, exact amount, validity
/// window (`validAfter <= now` and `now + 6s < validBefore`), and for v2 that `accepted`
/// is our offer. Signatures are not checked here (the facilitator does, or
/// [`verify_locally`]).
pub fn check_payment(
    payment: &PaymentPayload,
    offer: &Offer,
    now_ms: u64,
) -> Result<AcceptedPayment, X402Error> {
    if payment.network != offer.network {
        let got = match payment.version {
            X402Version::V1 => payment.network.v1_name(),
            X402Version::V2 => payment.network.caip2(),
        };
        return Err(X402Error::NetworkMismatch {
            got: got.to_owned(),
            want: match payment.version {
                X402Version::V1 => offer.network.v1_name(),
                X402Version::V2 => offer.network.caip2(),
            },
        });
    }
    if let Some(accepted) = &payment.accepted {
        check_accepted(accepted, offer)?;
    }
    let a = &payment.authorization;
    if a.to != offer.pay_to {
        return Err(X402Error::RecipientMismatch {
            got: a.to.to_checksum(),
            want: offer.pay_to.to_checksum(),
        });
    }
    if a.value != offer.amount_atomic {
        return Err(X402Error::AmountMismatch {
            got: a.value,
            want: offer.amount_atomic,
        });
    }
    let now_s = now_ms / 1000;
    if a.valid_after_s > now_s {
        return Err(X402Error::AuthorizationNotYetValid {
            valid_after_s: a.valid_after_s,
            now_s,
        });
    }
    if now_s.saturating_add(VALID_BEFORE_MARGIN_S) >= a.valid_before_s {
        return Err(X402Error::AuthorizationExpired {
            valid_before_s: a.valid_before_s,
            now_s,
        });
    }
    debug_assert!(
        a.valid_after_s <= now_s && now_s.saturating_add(VALID_BEFORE_MARGIN_S) < a.valid_before_s
    );
    Ok(AcceptedPayment {
        version: payment.version,
        network: offer.network,
        asset: offer.asset,
        payer: a.from,
        pay_to: a.to,
        amount_atomic: a.value,
        nonce: a.nonce,
        valid_before_s: a.valid_before_s,
        idempotency_key: idempotency_key(offer.network, &offer.asset, &a.from, &a.nonce),
        fingerprint: payment_fingerprint(
            offer.network,
            &offer.asset,
            &payment.authorization,
            &payment.signature,
        ),
    })
}

/// A v2 client copies one offer into `accepted`; it must be ours in every field that
/// decides what is paid and how it is signed. Addresses compare case-insensitively.
fn check_accepted(accepted: &AcceptedV2, offer: &Offer) -> Result<(), X402Error> {
    let asset = Address::parse(&accepted.asset).map_err(|_| X402Error::AssetMismatch {
        got: super::error::quote(&accepted.asset),
        want: offer.asset.to_checksum(),
    })?;
    if asset != offer.asset {
        return Err(X402Error::AssetMismatch {
            got: asset.to_checksum(),
            want: offer.asset.to_checksum(),
        });
    }
    let mismatch = |field| X402Error::OfferMismatch { field };
    if parse_u128_dec(&accepted.amount).ok() != Some(offer.amount_atomic) {
        return Err(mismatch("amount"));
    }
    if Address::parse(&accepted.pay_to).ok() != Some(offer.pay_to) {
        return Err(mismatch("payTo"));
    }
    if accepted.max_timeout_seconds != u64::from(offer.max_timeout_seconds) {
        return Err(mismatch("maxTimeoutSeconds"));
    }
    if accepted.extra_name.as_deref() != Some(offer.asset_name.as_str()) {
        return Err(mismatch("extra.name"));
    }
    if accepted.extra_version.as_deref() != Some(offer.asset_version.as_str()) {
        return Err(mismatch("extra.version"));
    }
    Ok(())
}

/// The development verifier (`ALLOW_LOCAL_X402_VERIFICATION=true`): [`check_payment`] plus
/// the EIP-712 signature, recovered and compared with `from`. It cannot see balances or
/// whether the nonce was used on chain; the ledger's idempotency key stops reuse here.
pub fn verify_locally(
    payment: &PaymentPayload,
    offer: &Offer,
    now_ms: u64,
) -> Result<AcceptedPayment, X402Error> {
    let accepted = check_payment(payment, offer, now_ms)?;
    verify_authorization_signature(offer, &payment.authorization, &payment.signature)?;
    Ok(accepted)
}
