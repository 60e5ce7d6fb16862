//! End-to-end tests of the x402 core: real signatures from a test key, every refusal, and
//! decoders fed garbage.

use base64::Engine as _;
use proptest::prelude::*;
use serde_json::{json, Value};

use super::eip712::*;
use super::evm::*;
use super::offer::tests::{usdc_offer, usdc_price};
use super::testkit::*;
use super::*;
use claw_durable::tenant::Network;

const NOW_S: u64 = 1_740_672_100;
const NOW_MS: u64 = NOW_S * 1000 + 999;

fn h32(s: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    hex::decode_to_slice(s.trim_start_matches("0x"), &mut out).unwrap();
    out
}

fn decode_json(version: X402Version, v: &Value) -> Result<PaymentPayload, X402Error> {
    decode_payment_header(version, &b64(&v.to_string()))
}

/// A signed v1 and v2 payment from alice for the USDC offer.
fn signed(version: X402Version) -> (Offer, Authorization, EvmSignature, Value) {
    let offer = usdc_offer();
    let alice = TestSigner::alice();
    let a = alice.authorization(&offer, NOW_S, 7);
    let sig = alice.sign_authorization(&offer, &a);
    let json = match version {
        X402Version::V1 => v1_json(&offer, &a, &sig),
        X402Version::V2 => v2_json(&offer, &a, &sig),
    };
    (offer, a, sig, json)
}

fn code<T: std::fmt::Debug>(r: Result<T, X402Error>) -> &'static str {
    r.unwrap_err().code()
}

// ---------------------------------------------------------------- EIP-712 vectors

#[test]
fn typehashes_are_keccak_of_the_type_strings_and_the_published_values() {
    assert_eq!(
        keccak256(TRANSFER_WITH_AUTHORIZATION_TYPE.as_bytes()),
        // TRANSFER_WITH_AUTHORIZATION_TYPEHASH in EIP-3009 / the USDC contract.
        h32("0x7c7c6cdb67a18743f49ec6fa9b35f50d52ed05cbed4cc592e13b44501c1a2267")
    );
    assert_eq!(
        keccak256(EIP712_DOMAIN_TYPE.as_bytes()),
        h32("0x8b73c3c69bb8fe3d512ecc4cf759cc79239f7b179b0ffacaa9a75d522b39400f")
    );
    assert_eq!(
        keccak256(b""),
        h32("0xc5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470")
    );
}

/// The worked example of the EIP-712 specification (Ether Mail): its domain separator,
/// its digest, and the signature the spec gives for the key keccak256("cow").
#[test]
fn eip712_spec_example() {
    let domain = Eip712Domain {
        name: "Ether Mail",
        version: "1",
        chain_id: 1,
        verifying_contract: Address::parse("0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC").unwrap(),
    };
    assert_eq!(
        domain.separator(),
        h32("0xf2cee375fa42b42143804025fc449deafd50cc031ca257e0b194a650a912090f")
    );
    let person = |name: &str, wallet: &str| {
        let mut enc = keccak256(b"Person(string name,address wallet)").to_vec();
        enc.extend_from_slice(&keccak256(name.as_bytes()));
        enc.extend_from_slice(&address_word(&Address::parse(wallet).unwrap()));
        keccak256(&enc)
    };
    let mut mail =
        keccak256(b"Mail(Person from,Person to,string contents)Person(string name,address wallet)")
            .to_vec();
    mail.extend_from_slice(&person("Cow", "0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826"));
    mail.extend_from_slice(&person("Bob", "0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB"));
    mail.extend_from_slice(&keccak256(b"Hello, Bob!"));
    let struct_hash = keccak256(&mail);
    assert_eq!(
        struct_hash,
        h32("0xc52c0ee5d84264471806290a3f2c4cecfc5490626bf912d01f240d7a274b371e")
    );
    let digest = typed_data_digest(&domain.separator(), &struct_hash);
    assert_eq!(
        digest,
        h32("0xbe609aee343fb3c4b28e1df9e632fca64fcfaede20f02e86244efddf30957bd2")
    );

    let spec_sig = EvmSignature::parse("0x4355c47d63924e8a72e509b65029052eb6c299d53a04e167c5775fd466751c9d07299936d304c153f6443dfa05f40ff007d72911b6f72307f996231605b915621c").unwrap();
    let cow = Address::parse("0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826").unwrap();
    assert_eq!(recover_signer(&digest, &spec_sig).unwrap(), cow);
    // Our signer reproduces the spec's signature bit for bit (RFC 6979, low s).
    let signer = TestSigner::from_bytes(keccak256(b"cow"));
    assert_eq!(signer.address(), cow);
    assert_eq!(signer.sign_digest(&digest), spec_sig);
}

/// The exact-EVM spec's example payload is a real signature by its `from` over USDC on
/// Base Sepolia: an independent vector for the whole TransferWithAuthorization digest.
#[test]
fn x402_spec_example_signature_recovers_to_its_from() {
    let a = Authorization {
        from: Address::parse("0x857b06519E91e3A54538791bDbb0E22373e36b66").unwrap(),
        to: Address::parse("0x209693Bc6afc0C5328bA36FaF03C514EF312287C").unwrap(),
        value: 10_000,
        valid_after_s: 1_740_672_089,
        valid_before_s: 1_740_672_154,
        nonce: B256(h32(
            "0xf3746613c2d920b5fdabc0856f2aeb2d4f88ee6037b8cc5d04a71a4462f13480",
        )),
    };
    let sig = EvmSignature::parse("0x2d6a7588d6acca505cbf0d9a4a227e0c52c6c34008c8e8986a1283259764173608a2ce6496642e377d6da8dbbf5836e9bd15092f9ecab05ded3d6293af148b571c").unwrap();
    let offer = usdc_offer();
    let digest = transfer_with_authorization_digest(&Eip712Domain::of_offer(&offer), &a);
    let recovered = recover_signer(&digest, &sig);
    assert_eq!(recovered.unwrap(), a.from);
}
