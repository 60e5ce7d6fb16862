//! A test wallet: a fixed secp256k1 key that signs real EIP-3009 authorizations, and the
//! payment headers x402 client libraries would build from them.

use base64::Engine as _;
use k256::ecdsa::SigningKey;
use serde_json::{json, Value};

use super::eip712::{transfer_with_authorization_digest, Eip712Domain};
use super::evm::{Address, EvmSignature, B256};
use super::offer::Offer;
use super::payment::Authorization;

pub struct TestSigner {
    key: SigningKey,
}

impl TestSigner {
    /// A signer from a fixed 32-byte secret (must be a valid scalar: not 0, below n).
    pub fn from_bytes(secret: [u8; 32]) -> TestSigner {
        TestSigner {
            key: SigningKey::from_slice(&secret).expect("test secret is a valid scalar"),
        }
    }

    pub fn alice() -> TestSigner {
        TestSigner::from_bytes([0x11; 32])
    }

    pub fn mallory() -> TestSigner {
        TestSigner::from_bytes([0x66; 32])
    }

    pub fn address(&self) -> Address {
        let point = self.key.verifying_key().to_encoded_point(false);
        let bytes: &[u8; 65] = point.as_bytes().try_into().expect("uncompressed point");
        Address::from_uncompressed_pubkey(bytes)
    }

    /// RFC 6979 deterministic, low-s: what ethers and viem produce.
    pub fn sign_digest(&self, digest: &[u8; 32]) -> EvmSignature {
        let (sig, recid) = self
            .key
            .sign_prehash_recoverable(digest)
            .expect("signing a 32-byte prehash");
        let mut out = EvmSignature {
            r: [0; 32],
            s: [0; 32],
            recovery_id: recid.to_byte(),
        };
        out.r.copy_from_slice(&sig.r().to_bytes());
        out.s.copy_from_slice(&sig.s().to_bytes());
        out
    }

    pub fn sign_authorization(&self, offer: &Offer, a: &Authorization) -> EvmSignature {
        self.sign_digest(&transfer_with_authorization_digest(
            &Eip712Domain::of_offer(offer),
            a,
        ))
    }

    /// What a client builds for `offer` at `now_s`: validAfter 10 minutes back, validBefore
    /// `maxTimeoutSeconds` ahead, the exact price, to payTo.
    pub fn authorization(&self, offer: &Offer, now_s: u64, nonce_seed: u8) -> Authorization {
        Authorization {
            from: self.address(),
            to: offer.pay_to,
            value: offer.amount_atomic,
            valid_after_s: now_s - 600,
            valid_before_s: now_s + u64::from(offer.max_timeout_seconds),
            nonce: B256([nonce_seed; 32]),
        }
    }
}

pub fn b64(json: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(json)
}

/// The exact-EVM `payload` object.
pub fn exact_payload(a: &Authorization, sig: &EvmSignature) -> Value {
    json!({
        "signature": sig.to_hex(),
        "authorization": {
            "from": a.from.to_checksum(),
            "to": a.to.to_checksum(),
            "value": a.value.to_string(),
            "validAfter": a.valid_after_s.to_string(),
            "validBefore": a.valid_before_s.to_string(),
            "nonce": a.nonce.to_lower_hex(),
        }
    })
}

/// The decoded `X-PAYMENT` JSON, as `x402-fetch` builds it.
pub fn v1_json(offer: &Offer, a: &Authorization, sig: &EvmSignature) -> Value {
    json!({
        "x402Version": 1,
        "scheme": "exact",
        "network": offer.network.v1_name(),
        "payload": exact_payload(a, sig),
    })
}

/// The decoded `PAYMENT-SIGNATURE` JSON, as `@x402/fetch` builds it.
pub fn v2_json(offer: &Offer, a: &Authorization, sig: &EvmSignature) -> Value {
    json!({
        "x402Version": 2,
        "resource": {
            "url": offer.resource_url,
            "description": offer.description,
            "mimeType": offer.mime_type,
        },
        "accepted": serde_json::to_value(offer.requirements_v2()).expect("plain struct"),
        "payload": exact_payload(a, sig),
        "extensions": {},
    })
}
