//! EIP-712 hashing of an EIP-3009 `TransferWithAuthorization` and secp256k1 signer recovery:
//! what the token contract itself checks, so the local verifier accepts exactly what the
//! chain would (for plain EOA signatures).

use k256::ecdsa::{RecoveryId, Signature, VerifyingKey};
use k256::elliptic_curve::scalar::IsHigh;

use super::error::X402Error;
use super::evm::{address_word, keccak256, u256_word, Address, EvmSignature};
use super::offer::Offer;
use super::payment::Authorization;

pub const EIP712_DOMAIN_TYPE: &str =
    "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)";
pub const TRANSFER_WITH_AUTHORIZATION_TYPE: &str = "TransferWithAuthorization(address from,address to,uint256 value,uint256 validAfter,uint256 validBefore,bytes32 nonce)";

/// The token's EIP-712 domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Eip712Domain<'a> {
    pub name: &'a str,
    pub version: &'a str,
    pub chain_id: u64,
    pub verifying_contract: Address,
}

impl<'a> Eip712Domain<'a> {
    /// The domain a payment for `offer` is signed under: the token's name and version from
    /// the offer's `extra`, the network's chain id, the token contract.
    pub fn of_offer(offer: &'a Offer) -> Eip712Domain<'a> {
        Eip712Domain {
            name: &offer.asset_name,
            version: &offer.asset_version,
            chain_id: offer.network.chain_id(),
            verifying_contract: offer.asset,
        }
    }

    /// `hashStruct(domain)`, the domain separator.
    pub fn separator(&self) -> [u8; 32] {
        let mut enc = Vec::with_capacity(5 * 32);
        enc.extend_from_slice(&keccak256(EIP712_DOMAIN_TYPE.as_bytes()));
        enc.extend_from_slice(&keccak256(self.name.as_bytes()));
        enc.extend_from_slice(&keccak256(self.version.as_bytes()));
        enc.extend_from_slice(&u256_word(u128::from(self.chain_id)));
        enc.extend_from_slice(&address_word(&self.verifying_contract));
        keccak256(&enc)
    }
}

/// `hashStruct(TransferWithAuthorization)`.
pub fn transfer_with_authorization_hash(a: &Authorization) -> [u8; 32] {
    let mut enc = Vec::with_capacity(7 * 32);
    enc.extend_from_slice(&keccak256(TRANSFER_WITH_AUTHORIZATION_TYPE.as_bytes()));
    enc.extend_from_slice(&address_word(&a.from));
    enc.extend_from_slice(&address_word(&a.to));
    enc.extend_from_slice(&u256_word(a.value));
    enc.extend_from_slice(&u256_word(u128::from(a.valid_after_s)));
    enc.extend_from_slice(&u256_word(u128::from(a.valid_before_s)));
    enc.extend_from_slice(&a.nonce.0);
    keccak256(&enc)
}

/// `keccak256(0x19 0x01 || domainSeparator || structHash)`.
pub fn typed_data_digest(domain_separator: &[u8; 32], struct_hash: &[u8; 32]) -> [u8; 32] {
    let mut enc = [0u8; 66];
    enc[0] = 0x19;
    enc[1] = 0x01;
    enc[2..34].copy_from_slice(domain_separator);
    enc[34..].copy_from_slice(struct_hash);
    keccak256(&enc)
}

/// The digest a wallet signs for `authorization` under `domain`.
pub fn transfer_with_authorization_digest(
    domain: &Eip712Domain<'_>,
    authorization: &Authorization,
) -> [u8; 32] {
    typed_data_digest(
        &domain.separator(),
        &transfer_with_authorization_hash(authorization),
    )
}

/// The address whose key made `signature` over `digest`. High-s signatures are refused
/// (EIP-2: the chain's `ecrecover` consumers, USDC included, refuse them too).
pub fn recover_signer(digest: &[u8; 32], signature: &EvmSignature) -> Result<Address, X402Error> {
    let sig = Signature::from_scalars(signature.r, signature.s)
        .map_err(|_| X402Error::InvalidSignature("r or s is zero or not below the curve order"))?;
    if bool::from(sig.s().is_high()) {
        return Err(X402Error::MalleableSignature);
    }
    let recovery_id = RecoveryId::from_byte(signature.recovery_id)
        .ok_or(X402Error::InvalidSignature("bad recovery id"))?;
    let key = VerifyingKey::recover_from_prehash(digest, &sig, recovery_id)
        .map_err(|_| X402Error::InvalidSignature("no public key recovers from it"))?;
    let point = key.to_encoded_point(false);
    let bytes: &[u8; 65] = point
        .as_bytes()
        .try_into()
        .map_err(|_| X402Error::InvalidSignature("recovered key is not an uncompressed point"))?;
    Ok(Address::from_uncompressed_pubkey(bytes))
}

/// Whether `signature` is `authorization.from`'s signature of `authorization` under the
/// offer's token domain.
pub fn verify_authorization_signature(
    offer: &Offer,
    authorization: &Authorization,
    signature: &EvmSignature,
) -> Result<(), X402Error> {
    let digest = transfer_with_authorization_digest(&Eip712Domain::of_offer(offer), authorization);
    let signer = recover_signer(&digest, signature)?;
    if signer != authorization.from {
        return Err(X402Error::SignerMismatch {
            recovered: signer.to_lower_hex(),
            from: authorization.from.to_lower_hex(),
        });
    }
    Ok(())
}
