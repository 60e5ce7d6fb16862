//! How the ledger names a payment. The idempotency key is what makes a payment usable once:
//! EIP-3009 nonces are unique per (chain, token, authorizer), so the key is exactly that
//! tuple. The fingerprint tells a retry of the same signed payment (same result) from a
//! different payment that reuses the key (a conflict).

use claw_durable::tenant::Network;
use sha2::{Digest, Sha256};

use super::evm::{Address, EvmSignature, B256};
use super::payment::Authorization;

/// `{caip2}:{asset}:{payer}:{nonce}`, all lowercase hex, e.g.
/// `eip155:84532:0x036c…cf7e:0x857b…6b66:0xf374…3480`. Every part has a fixed format, so
/// the key is unambiguous; at most 165 bytes.
pub fn idempotency_key(network: Network, asset: &Address, payer: &Address, nonce: &B256) -> String {
    let key = format!(
        "{}:{}:{}:{}",
        network.caip2(),
        asset.to_lower_hex(),
        payer.to_lower_hex(),
        nonce.to_lower_hex()
    );
    debug_assert_eq!(key, key.to_ascii_lowercase());
    key
}

/// SHA-256 hex of the canonical form of a signed payment: the token domain, every
/// authorization field (decimal integers, lowercase hex) and the signature with `v` as
/// 27/28. Encoding differences on the wire (address case, `v` = 0/1, base64 padding, JSON
/// key order) do not change it; any signed value does.
pub fn payment_fingerprint(
    network: Network,
    asset: &Address,
    authorization: &Authorization,
    signature: &EvmSignature,
) -> String {
    let canonical = format!(
        "x402-exact-evm-eip3009\nnetwork={}\nasset={}\nfrom={}\nto={}\nvalue={}\nvalidAfter={}\nvalidBefore={}\nnonce={}\nsignature={}\n",
        network.caip2(),
        asset.to_lower_hex(),
        authorization.from.to_lower_hex(),
        authorization.to.to_lower_hex(),
        authorization.value,
        authorization.valid_after_s,
        authorization.valid_before_s,
        authorization.nonce.to_lower_hex(),
        signature.to_hex(),
    );
    hex::encode(Sha256::digest(canonical.as_bytes()))
}
