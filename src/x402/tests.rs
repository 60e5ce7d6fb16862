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
use crate::facilitator::*;
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
    r.unwrap_err().code().as_str()
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

/// The transports-v2 HTTP spec's PAYMENT-REQUIRED example, byte for byte, followed by our
/// `extensions` member (the payment-identifier declaration), which the spec's example lacks.
#[test]
fn v2_challenge_is_the_spec_header_byte_for_byte() {
    let spec = "eyJ4NDAyVmVyc2lvbiI6MiwiZXJyb3IiOiJQQVlNRU5ULVNJR05BVFVSRSBoZWFkZXIgaXMgcmVxdWlyZWQiLCJyZXNvdXJjZSI6eyJ1cmwiOiJodHRwczovL2FwaS5leGFtcGxlLmNvbS9wcmVtaXVtLWRhdGEiLCJkZXNjcmlwdGlvbiI6IkFjY2VzcyB0byBwcmVtaXVtIG1hcmtldCBkYXRhIiwibWltZVR5cGUiOiJhcHBsaWNhdGlvbi9qc29uIn0sImFjY2VwdHMiOlt7InNjaGVtZSI6ImV4YWN0IiwibmV0d29yayI6ImVpcDE1NTo4NDUzMiIsImFtb3VudCI6IjEwMDAwIiwiYXNzZXQiOiIweDAzNkNiRDUzODQyYzU0MjY2MzRlNzkyOTU0MWVDMjMxOGYzZENGN2UiLCJwYXlUbyI6IjB4MjA5NjkzQmM2YWZjMEM1MzI4YkEzNkZhRjAzQzUxNEVGMzEyMjg3QyIsIm1heFRpbWVvdXRTZWNvbmRzIjo2MCwiZXh0cmEiOnsibmFtZSI6IlVTREMiLCJ2ZXJzaW9uIjoiMiJ9fV19";
    let b64 = base64::engine::general_purpose::STANDARD;
    let ours =
        String::from_utf8(b64.decode(usdc_offer().challenge(None).header_v2).unwrap()).unwrap();
    let spec = String::from_utf8(b64.decode(spec).unwrap()).unwrap();
    let (head, extensions) = ours.split_once(r#","extensions":"#).unwrap();
    assert_eq!(format!("{head}}}"), spec);
    assert!(extensions.starts_with(r#"{"payment-identifier":{"info":{"required":false}"#));
}

/// The transports-v2 HTTP spec's PAYMENT-SIGNATURE example, decoded, matched and verified
/// locally against the same offer: a payment built by someone else's code.
#[test]
fn spec_payment_signature_example_is_accepted() {
    let spec = "eyJ4NDAyVmVyc2lvbiI6MiwicmVzb3VyY2UiOnsidXJsIjoiaHR0cHM6Ly9hcGkuZXhhbXBsZS5jb20vcHJlbWl1bS1kYXRhIiwiZGVzY3JpcHRpb24iOiJBY2Nlc3MgdG8gcHJlbWl1bSBtYXJrZXQgZGF0YSIsIm1pbWVUeXBlIjoiYXBwbGljYXRpb24vanNvbiJ9LCJhY2NlcHRlZCI6eyJzY2hlbWUiOiJleGFjdCIsIm5ldHdvcmsiOiJlaXAxNTU6ODQ1MzIiLCJhbW91bnQiOiIxMDAwMCIsImFzc2V0IjoiMHgwMzZDYkQ1Mzg0MmM1NDI2NjM0ZTc5Mjk1NDFlQzIzMThmM2RDRjdlIiwicGF5VG8iOiIweDIwOTY5M0JjNmFmYzBDNTMyOGJBMzZGYUYwM0M1MTRFRjMxMjI4N0MiLCJtYXhUaW1lb3V0U2Vjb25kcyI6NjAsImV4dHJhIjp7Im5hbWUiOiJVU0RDIiwidmVyc2lvbiI6IjIifX0sInBheWxvYWQiOnsic2lnbmF0dXJlIjoiMHgyZDZhNzU4OGQ2YWNjYTUwNWNiZjBkOWE0YTIyN2UwYzUyYzZjMzQwMDhjOGU4OTg2YTEyODMyNTk3NjQxNzM2MDhhMmNlNjQ5NjY0MmUzNzdkNmRhOGRiYmY1ODM2ZTliZDE1MDkyZjllY2FiMDVkZWQzZDYyOTNhZjE0OGI1NzFjIiwiYXV0aG9yaXphdGlvbiI6eyJmcm9tIjoiMHg4NTdiMDY1MTlFOTFlM0E1NDUzODc5MWJEYmIwRTIyMzczZTM2YjY2IiwidG8iOiIweDIwOTY5M0JjNmFmYzBDNTMyOGJBMzZGYUYwM0M1MTRFRjMxMjI4N0MiLCJ2YWx1ZSI6IjEwMDAwIiwidmFsaWRBZnRlciI6IjE3NDA2NzIwODkiLCJ2YWxpZEJlZm9yZSI6IjE3NDA2NzIxNTQiLCJub25jZSI6IjB4ZjM3NDY2MTNjMmQ5MjBiNWZkYWJjMDg1NmYyYWViMmQ0Zjg4ZWU2MDM3YjhjYzVkMDRhNzFhNDQ2MmYxMzQ4MCJ9fX0=";
    let p = decode_payment_header(X402Version::V2, spec).unwrap();
    assert_eq!(p.network, Network::BaseSepolia);
    let ok = verify_locally(&p, &usdc_offer(), NOW_MS).unwrap();
    assert_eq!(
        ok.payer.to_checksum(),
        "0x857b06519E91e3A54538791bDbb0E22373e36b66"
    );
    assert_eq!(ok.amount_atomic, 10_000);
    assert_eq!(
        ok.idempotency_key,
        "eip155:84532:0x036cbd53842c5426634e7929541ec2318f3dcf7e:0x857b06519e91e3a54538791bdbb0e22373e36b66:0xf3746613c2d920b5fdabc0856f2aeb2d4f88ee6037b8cc5d04a71a4462f13480"
    );
    // The same signed authorization as a v1 X-PAYMENT: same key, same fingerprint.
    let v1 = json!({
        "x402Version": 1, "scheme": "exact", "network": "base-sepolia",
        "payload": serde_json::from_str::<Value>(p.raw_json().get()).unwrap()["payload"],
    });
    let ok1 = verify_locally(
        &decode_json(X402Version::V1, &v1).unwrap(),
        &usdc_offer(),
        NOW_MS,
    )
    .unwrap();
    assert_eq!(ok1.idempotency_key, ok.idempotency_key);
    assert_eq!(ok1.fingerprint, ok.fingerprint);
    assert_eq!(ok1.version, X402Version::V1);
}

// ---------------------------------------------------------------- sign -> verify

#[test]
fn round_trip_v1_and_v2() {
    for version in [X402Version::V1, X402Version::V2] {
        let (offer, a, sig, json) = signed(version);
        let p = decode_json(version, &json).unwrap();
        assert_eq!(p.version, version);
        assert_eq!(p.authorization, a);
        assert_eq!(p.signature, sig);
        assert_eq!(p.payer(), TestSigner::alice().address());
        let ok = verify_locally(&p, &offer, NOW_MS).unwrap();
        assert_eq!(ok, check_payment(&p, &offer, NOW_MS).unwrap());
        assert_eq!(ok.payer, TestSigner::alice().address());
        assert_eq!(ok.pay_to, offer.pay_to);
        assert_eq!(ok.amount_atomic, 10_000);
        assert_eq!(ok.network, Network::BaseSepolia);
        assert_eq!(ok.fingerprint.len(), 64);
    }
}

#[test]
fn signature_by_another_key_is_refused() {
    let offer = usdc_offer();
    let a = TestSigner::alice().authorization(&offer, NOW_S, 1);
    // Mallory signs an authorization that spends alice's funds.
    let sig = TestSigner::mallory().sign_authorization(&offer, &a);
    let p = decode_json(X402Version::V1, &v1_json(&offer, &a, &sig)).unwrap();
    assert!(
        check_payment(&p, &offer, NOW_MS).is_ok(),
        "cheap checks pass"
    );
    let err = verify_locally(&p, &offer, NOW_MS).unwrap_err();
    assert_eq!(err.code(), "signer_mismatch");
    assert!(err
        .to_string()
        .contains(&TestSigner::mallory().address().to_lower_hex()));
}

#[test]
fn tampered_fields_break_the_signature() {
    let (offer, a, sig, _) = signed(X402Version::V2);
    let mut dearer = offer.clone();
    dearer.amount_atomic = 10_001;
    let tampered = [
        // Value raised to a (different) price the offer asks: the signature is for 10000.
        (dearer.clone(), Authorization { value: 10_001, ..a }),
        (
            offer.clone(),
            Authorization {
                valid_before_s: a.valid_before_s + 1,
                ..a
            },
        ),
        (
            offer.clone(),
            Authorization {
                valid_after_s: a.valid_after_s - 1,
                ..a
            },
        ),
        (
            offer.clone(),
            Authorization {
                nonce: B256([8; 32]),
                ..a
            },
        ),
    ];
    for (offer, t) in tampered {
        let p = decode_json(X402Version::V2, &v2_json(&offer, &t, &sig)).unwrap();
        assert_eq!(code(verify_locally(&p, &offer, NOW_MS)), "signer_mismatch");
    }
    // A different token domain (name, version, contract, chain) also breaks it.
    let mut other = offer.clone();
    other.asset_version = "1".into();
    let p = decode_json(X402Version::V2, &v2_json(&other, &a, &sig)).unwrap();
    assert_eq!(code(verify_locally(&p, &other, NOW_MS)), "signer_mismatch");
}

#[test]
fn high_s_and_degenerate_signatures_are_refused() {
    let (offer, a, sig, _) = signed(X402Version::V1);
    // s' = n - s with the parity flipped recovers the same key: the malleable twin.
    let n = h32("0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141");
    let mut high = sig;
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let d = i16::from(n[i]) - i16::from(sig.s[i]) - borrow;
        high.s[i] = d.rem_euclid(256) as u8;
        borrow = i16::from(d < 0);
    }
    high.recovery_id ^= 1;
    let p = decode_json(X402Version::V1, &v1_json(&offer, &a, &high)).unwrap();
    assert_eq!(
        code(verify_locally(&p, &offer, NOW_MS)),
        "malleable_signature"
    );

    for (r, s) in [([0u8; 32], sig.s), (sig.r, [0u8; 32]), ([0xff; 32], sig.s)] {
        let bad = EvmSignature { r, s, ..sig };
        let p = decode_json(X402Version::V1, &v1_json(&offer, &a, &bad)).unwrap();
        assert_eq!(
            code(verify_locally(&p, &offer, NOW_MS)),
            "invalid_signature"
        );
    }
    // The other parity recovers some other key, or none.
    let flipped = EvmSignature {
        recovery_id: sig.recovery_id ^ 1,
        ..sig
    };
    let p = decode_json(X402Version::V1, &v1_json(&offer, &a, &flipped)).unwrap();
    assert!(matches!(
        code(verify_locally(&p, &offer, NOW_MS)),
        "signer_mismatch" | "invalid_signature"
    ));
}

#[test]
fn v_as_0_1_or_27_28_is_the_same_payment() {
    let (offer, _, sig, json) = signed(X402Version::V1);
    let hex27 = sig.to_hex();
    let v = u8::from_str_radix(&hex27[130..], 16).unwrap();
    let hex01 = format!("{}{:02x}", &hex27[..130], v - 27);
    let mut json01 = json.clone();
    json01["payload"]["signature"] = Value::String(hex01.to_uppercase().replacen('X', "x", 1));
    let a = verify_locally(
        &decode_json(X402Version::V1, &json).unwrap(),
        &offer,
        NOW_MS,
    )
    .unwrap();
    let b = verify_locally(
        &decode_json(X402Version::V1, &json01).unwrap(),
        &offer,
        NOW_MS,
    )
    .unwrap();
    assert_eq!(a.fingerprint, b.fingerprint);
}

// ---------------------------------------------------------------- matching

#[test]
fn validity_window_boundaries() {
    let (offer, a, _, json) = signed(X402Version::V1);
    let p = decode_json(X402Version::V1, &json).unwrap();
    let at = |now_s: u64| check_payment(&p, &offer, now_s * 1000);
    // validAfter <= now: the first valid second is validAfter itself.
    assert!(at(a.valid_after_s).is_ok());
    assert_eq!(code(at(a.valid_after_s - 1)), "authorization_not_yet_valid");
    // now + 6 < validBefore: the last valid second is validBefore - 7.
    assert!(at(a.valid_before_s - VALID_BEFORE_MARGIN_S - 1).is_ok());
    assert_eq!(
        code(at(a.valid_before_s - VALID_BEFORE_MARGIN_S)),
        "authorization_expired"
    );
    assert_eq!(code(at(a.valid_before_s + 1_000)), "authorization_expired");
    assert_eq!(code(at(u64::MAX / 1000)), "authorization_expired");
    assert_eq!(code(at(0)), "authorization_not_yet_valid");
    // Milliseconds are floored to seconds.
    assert!(check_payment(&p, &offer, (a.valid_after_s) * 1000 + 999).is_ok());
}

#[test]
fn wrong_recipient_amount_and_network_are_refused() {
    let offer = usdc_offer();
    let alice = TestSigner::alice();
    let base = alice.authorization(&offer, NOW_S, 3);
    let cases = [
        (
            Authorization {
                to: TestSigner::mallory().address(),
                ..base
            },
            "recipient_mismatch",
        ),
        (
            Authorization {
                value: 9_999,
                ..base
            },
            "amount_mismatch",
        ),
        // v1 and v2 both require the exact price: more is refused too.
        (
            Authorization {
                value: 10_001,
                ..base
            },
            "amount_mismatch",
        ),
        (Authorization { value: 0, ..base }, "amount_mismatch"),
    ];
    for version in [X402Version::V1, X402Version::V2] {
        for (a, want) in &cases {
            let sig = alice.sign_authorization(&offer, a);
            let json = match version {
                X402Version::V1 => v1_json(&offer, a, &sig),
                X402Version::V2 => v2_json(&offer, a, &sig),
            };
            let p = decode_json(version, &json).unwrap();
            assert_eq!(
                code(check_payment(&p, &offer, NOW_MS)),
                *want,
                "{version:?}"
            );
            assert_eq!(code(verify_locally(&p, &offer, NOW_MS)), *want);
        }
    }
    // A payment on mainnet for a testnet offer.
    let (_, _, _, mut json) = signed(X402Version::V1);
    json["network"] = json!("base");
    let p = decode_json(X402Version::V1, &json).unwrap();
    assert_eq!(code(check_payment(&p, &offer, NOW_MS)), "network_mismatch");
    let (_, _, _, mut json) = signed(X402Version::V2);
    json["accepted"]["network"] = json!("eip155:8453");
    let p = decode_json(X402Version::V2, &json).unwrap();
    let err = check_payment(&p, &offer, NOW_MS).unwrap_err();
    assert_eq!(err.code(), "network_mismatch");
    assert!(err.to_string().contains("eip155:84532"));
}

#[test]
fn v2_accepted_must_be_our_offer() {
    let offer = usdc_offer();
    let cases: [(&str, Value, &str); 9] = [
        (
            "asset",
            json!("0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913"),
            "asset_mismatch",
        ),
        ("asset", json!("not an address"), "asset_mismatch"),
        ("amount", json!("10001"), "offer_mismatch"),
        ("amount", json!("010000"), "offer_mismatch"),
        (
            "payTo",
            json!("0x1111111111111111111111111111111111111111"),
            "offer_mismatch",
        ),
        ("maxTimeoutSeconds", json!(3600), "offer_mismatch"),
        (
            "extra",
            json!({"name": "USD Coin", "version": "2"}),
            "offer_mismatch",
        ),
        (
            "extra",
            json!({"name": "USDC", "version": "1"}),
            "offer_mismatch",
        ),
        ("extra", json!({}), "offer_mismatch"),
    ];
    for (field, value, want) in cases {
        let (_, _, _, mut json) = signed(X402Version::V2);
        json["accepted"][field] = value;
        let p = decode_json(X402Version::V2, &json).unwrap();
        assert_eq!(code(check_payment(&p, &offer, NOW_MS)), want, "{field}");
    }
    // Case differences in addresses and extra keys we do not know are fine.
    let (_, _, _, mut json) = signed(X402Version::V2);
    json["accepted"]["asset"] = json!(offer.asset.to_lower_hex());
    json["accepted"]["payTo"] = json!(offer
        .pay_to
        .to_lower_hex()
        .to_uppercase()
        .replacen('X', "x", 1));
    json["accepted"]["extra"]["assetTransferMethod"] = json!("eip3009");
    let p = decode_json(X402Version::V2, &json).unwrap();
    assert!(verify_locally(&p, &offer, NOW_MS).is_ok());
}

// ---------------------------------------------------------------- decoding

#[test]
fn header_selection() {
    assert_eq!(select_payment_header(None, None), Ok(None));
    assert_eq!(
        select_payment_header(Some("a"), None),
        Ok(Some((X402Version::V1, "a")))
    );
    assert_eq!(
        select_payment_header(None, Some("b")),
        Ok(Some((X402Version::V2, "b")))
    );
    assert_eq!(
        code(select_payment_header(Some("a"), Some("b"))),
        "ambiguous_payment_headers"
    );
}

#[test]
fn malformed_headers_have_precise_codes() {
    let (_, _, _, v1) = signed(X402Version::V1);
    let (_, _, _, v2) = signed(X402Version::V2);
    let raw = |version, s: &str| code(decode_payment_header(version, s));
    let js = |version, v: Value| code(decode_json(version, &v));
    let with = |base: &Value, path: &[&str], value: Value| {
        let mut v = base.clone();
        let mut at = &mut v;
        for key in &path[..path.len() - 1] {
            at = &mut at[*key];
        }
        at[path[path.len() - 1]] = value;
        v
    };
    let without = |base: &Value, key: &str| {
        let mut v = base.clone();
        v.as_object_mut().unwrap().remove(key);
        v
    };
    use X402Version::{V1, V2};

    assert_eq!(raw(V1, ""), "invalid_payment_header");
    assert_eq!(raw(V1, "!!!!"), "invalid_payment_header");
    assert_eq!(raw(V1, "eyJ4Ijox"), "invalid_payment_header"); // {"x":1 (truncated)
    assert_eq!(raw(V1, &b64("[1,2]")), "invalid_payment_header");
    assert_eq!(raw(V1, &b64("null")), "invalid_payment_header");
    assert_eq!(
        raw(
            V1,
            &base64::engine::general_purpose::STANDARD.encode([0xff, 0xfe, b'{'])
        ),
        "invalid_payment_header"
    );
    // URL-safe alphabet is not the standard one.
    assert_eq!(
        raw(V1, "eyJ4NDAyVmVyc2lvbiI6MX0_-w"),
        "invalid_payment_header"
    );
    assert_eq!(
        raw(V1, &"A".repeat(MAX_PAYMENT_HEADER_BYTES + 4)),
        "payment_header_too_large"
    );

    assert_eq!(
        js(V1, without(&v1, "x402Version")),
        "invalid_payment_header"
    );
    assert_eq!(
        js(V1, with(&v1, &["x402Version"], json!("1"))),
        "invalid_payment_header"
    );
    assert_eq!(
        js(V1, with(&v1, &["x402Version"], json!(1.5))),
        "invalid_payment_header"
    );
    assert_eq!(
        js(V1, with(&v1, &["x402Version"], json!(3))),
        "unsupported_x402_version"
    );
    assert_eq!(
        js(V1, with(&v1, &["x402Version"], json!(0))),
        "unsupported_x402_version"
    );
    assert_eq!(js(V1, v2.clone()), "x402_version_header_mismatch");
    assert_eq!(js(V2, v1.clone()), "x402_version_header_mismatch");

    assert_eq!(
        js(V1, with(&v1, &["scheme"], json!("upto"))),
        "unsupported_scheme"
    );
    assert_eq!(
        js(V2, with(&v2, &["accepted", "scheme"], json!("EXACT"))),
        "unsupported_scheme"
    );
    // An unsupported scheme is named even when its payload has another shape.
    let upto = with(
        &with(&v1, &["scheme"], json!("upto")),
        &["payload"],
        json!({"permit": 1}),
    );
    assert_eq!(js(V1, upto), "unsupported_scheme");
    assert_eq!(
        js(V1, with(&v1, &["network"], json!("solana"))),
        "unsupported_network"
    );
    assert_eq!(
        js(V1, with(&v1, &["network"], json!("eip155:84532"))),
        "unsupported_network"
    );
    assert_eq!(
        js(
            V2,
            with(&v2, &["accepted", "network"], json!("base-sepolia"))
        ),
        "unsupported_network"
    );

    assert_eq!(js(V1, without(&v1, "payload")), "invalid_payment_header");
    assert_eq!(
        js(V1, with(&v1, &["payload"], json!("0x00"))),
        "invalid_payment_header"
    );
    assert_eq!(js(V2, without(&v2, "accepted")), "invalid_payment_header");
    assert_eq!(
        js(
            V2,
            with(&v2, &["accepted", "maxTimeoutSeconds"], json!("60"))
        ),
        "invalid_payment_header"
    );
    assert_eq!(
        js(V2, with(&v2, &["resource"], json!("https://x"))),
        "invalid_payment_header"
    );
    assert_eq!(
        js(V2, with(&v2, &["extensions"], json!([]))),
        "invalid_payment_header"
    );
    let auth = ["payload", "authorization"];
    for field in ["from", "to", "value", "validAfter", "validBefore", "nonce"] {
        let path = [auth[0], auth[1], field];
        assert_eq!(
            js(V1, with(&v1, &path, json!(5))),
            "invalid_payment_header",
            "{field}"
        );
        let mut missing = v1.clone();
        missing["payload"]["authorization"]
            .as_object_mut()
            .unwrap()
            .remove(field);
        assert_eq!(js(V1, missing), "invalid_payment_header", "{field}");
    }

    let bad_values: [(&str, Value); 14] = [
        ("from", json!("0x1234")),
        ("from", json!("0x5AAeb6053F3E94C9b9A09f33669435E7Ef1BeAed")), // bad checksum
        ("to", json!("209693Bc6afc0C5328bA36FaF03C514EF312287C")),
        ("value", json!("-1")),
        ("value", json!("1e4")),
        ("value", json!("0x2710")),
        ("value", json!("010000")),
        ("value", json!("340282366920938463463374607431768211456")),
        ("validAfter", json!("")),
        ("validBefore", json!("18446744073709551616")),
        ("nonce", json!("0x1234")),
        ("nonce", json!(format!("0x{}", "g".repeat(64)))),
        ("nonce", json!(format!("{}", "a".repeat(64)))),
        ("nonce", json!(format!("0x{}", "a".repeat(66)))),
    ];
    for (field, value) in bad_values {
        let e = decode_json(V1, &with(&v1, &[auth[0], auth[1], field], value.clone())).unwrap_err();
        assert_eq!(e.code(), "invalid_payment_payload", "{field} {value}");
        assert!(e.to_string().contains(field), "{e}");
    }
    for sig in [
        "0x",
        "0x12",
        &format!("0x{}1d", "11".repeat(64)),
        &"11".repeat(65),
    ] {
        let e = decode_json(V1, &with(&v1, &["payload", "signature"], json!(sig))).unwrap_err();
        assert_eq!(e.code(), "invalid_payment_payload");
    }
}

#[test]
fn duplicate_keys_are_refused_so_no_one_reads_a_different_value() {
    let (offer, a, sig, v1) = signed(X402Version::V1);
    let text = v1.to_string();
    let dup = text.replacen(
        "\"value\":\"10000\"",
        "\"value\":\"10000\",\"value\":\"1\"",
        1,
    );
    assert_ne!(dup, text);
    assert_eq!(
        code(decode_payment_header(X402Version::V1, &b64(&dup))),
        "invalid_payment_header"
    );
    let dup_version = text.replacen(
        "\"x402Version\":1",
        "\"x402Version\":1,\"x402Version\":2",
        1,
    );
    assert_eq!(
        code(decode_payment_header(X402Version::V1, &b64(&dup_version))),
        "invalid_payment_header"
    );
    let _ = (offer, a, sig);
}

#[test]
fn tolerated_encodings() {
    let (offer, _, _, v1) = signed(X402Version::V1);
    let text = v1.to_string();
    let padded = b64(&text);
    let unpadded = padded.trim_end_matches('=');
    for header in [padded.clone(), unpadded.to_owned(), format!(" {padded}\t")] {
        let p = decode_payment_header(X402Version::V1, &header).unwrap();
        assert!(check_payment(&p, &offer, NOW_MS).is_ok());
    }
    // Unknown fields anywhere are ignored; the raw JSON is kept verbatim for the facilitator.
    let mut extra = v1.clone();
    extra["futureField"] = json!({"a": [1, 2, 3]});
    extra["payload"]["authorization"]["memo"] = json!("hi");
    let p = decode_json(X402Version::V1, &extra).unwrap();
    assert_eq!(p.raw_json().get(), extra.to_string());
    // Uppercase 0X prefixes and all-caps hex are valid encodings.
    let mut caps = v1.clone();
    let from = caps["payload"]["authorization"]["from"]
        .as_str()
        .unwrap()
        .to_uppercase();
    caps["payload"]["authorization"]["from"] = json!(from);
    let p = decode_json(X402Version::V1, &caps).unwrap();
    assert_eq!(p.payer(), TestSigner::alice().address());
}

// ---------------------------------------------------------------- ledger identity

#[test]
fn idempotency_key_and_fingerprint() {
    let (offer, a, sig, _) = signed(X402Version::V1);
    let key = idempotency_key(offer.network, &offer.asset, &a.from, &a.nonce);
    assert_eq!(key, key.to_ascii_lowercase());
    assert_eq!(
        key,
        format!(
            "eip155:84532:0x036cbd53842c5426634e7929541ec2318f3dcf7e:{}:0x{}",
            TestSigner::alice().address().to_lower_hex(),
            "07".repeat(32)
        )
    );
    let fp = payment_fingerprint(offer.network, &offer.asset, &a, &sig);
    assert_eq!(fp.len(), 64);
    assert!(fp
        .bytes()
        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    // Every signed field changes it.
    let variants = [
        Authorization {
            from: TestSigner::mallory().address(),
            ..a
        },
        Authorization {
            to: TestSigner::mallory().address(),
            ..a
        },
        Authorization {
            value: a.value + 1,
            ..a
        },
        Authorization {
            valid_after_s: a.valid_after_s + 1,
            ..a
        },
        Authorization {
            valid_before_s: a.valid_before_s + 1,
            ..a
        },
        Authorization {
            nonce: B256([9; 32]),
            ..a
        },
    ];
    for v in variants {
        assert_ne!(
            payment_fingerprint(offer.network, &offer.asset, &v, &sig),
            fp
        );
    }
    let mut other_sig = sig;
    other_sig.r[31] ^= 1;
    assert_ne!(
        payment_fingerprint(offer.network, &offer.asset, &a, &other_sig),
        fp
    );
    assert_ne!(
        payment_fingerprint(Network::Base, &offer.asset, &a, &sig),
        fp
    );
}

// ---------------------------------------------------------------- facilitator

#[test]
fn facilitator_request_bodies() {
    for version in [X402Version::V1, X402Version::V2] {
        let (offer, _, _, json) = signed(version);
        let p = decode_json(version, &json).unwrap();
        let body: Value = serde_json::from_str(&facilitator_request_body(&p, &offer)).unwrap();
        assert_eq!(body["x402Version"], json!(version.number()));
        assert_eq!(body["paymentPayload"], json);
        let want = match version {
            X402Version::V1 => serde_json::to_value(offer.requirements_v1()).unwrap(),
            X402Version::V2 => serde_json::to_value(offer.requirements_v2()).unwrap(),
        };
        assert_eq!(body["paymentRequirements"], want);
        assert_eq!(body.as_object().unwrap().len(), 3);
    }
    // The payload bytes go out exactly as they came in (key order, spacing).
    let (offer, _, _, json) = signed(X402Version::V1);
    let pretty = serde_json::to_string_pretty(&json).unwrap();
    let p = decode_payment_header(X402Version::V1, &b64(&pretty)).unwrap();
    assert!(facilitator_request_body(&p, &offer).contains(&pretty));
}

#[test]
fn verify_responses() {
    let (_, a, _, json) = signed(X402Version::V2);
    let p = decode_json(X402Version::V2, &json).unwrap();
    let from = a.from.to_checksum();
    let ok = |body: String| {
        let r = parse_verify_response(body.as_bytes())?;
        check_verify_response(&r, &p)
    };
    assert_eq!(
        ok(format!(r#"{{"isValid":true,"payer":"{from}"}}"#)),
        Ok(())
    );
    assert_eq!(ok(r#"{"isValid":true}"#.into()), Ok(()));
    assert_eq!(
        ok(format!(
            r#"{{"isValid":true,"invalidReason":null,"payer":"{}","extensions":{{}},"x":[1]}}"#,
            a.from.to_lower_hex()
        )),
        Ok(())
    );
    let e = ok(format!(
        r#"{{"isValid":false,"invalidReason":"insufficient_funds","payer":"{from}"}}"#
    ))
    .unwrap_err();
    assert_eq!(
        e,
        X402Error::VerificationFailed {
            reason: Some("insufficient_funds".into())
        }
    );
    assert_eq!(e.status(), 402);
    assert_eq!(
        ok(r#"{"isValid":true,"payer":"0x1111111111111111111111111111111111111111"}"#.into())
            .unwrap_err()
            .code(),
        "facilitator_bad_response"
    );
    for garbage in [
        "",
        "null",
        "[]",
        "{}",
        r#"{"isValid":"true"}"#,
        r#"{"isValid":1}"#,
        r#"{"isValid":true,"payer":5}"#,
        r#"{"isValid":false,"invalidReason":{"a":1}}"#,
        "<html>502 Bad Gateway</html>",
    ] {
        let e = ok(garbage.into()).unwrap_err();
        assert_eq!(e.code(), "facilitator_bad_response", "{garbage}");
        assert_eq!(e.status(), 502);
    }
    let huge = format!(
        r#"{{"isValid":false,"invalidReason":"{}"}}"#,
        "x".repeat(crate::facilitator::MAX_FACILITATOR_RESPONSE_BYTES)
    );
    assert_eq!(ok(huge).unwrap_err().code(), "facilitator_bad_response");
    // Reasons are opaque, bounded and printable.
    let long = format!(
        r#"{{"isValid":false,"invalidReason":"{}\n"}}"#,
        "y".repeat(1000)
    );
    let r = parse_verify_response(long.as_bytes()).unwrap();
    assert_eq!(
        r.invalid_reason.unwrap().len(),
        crate::facilitator::wire::MAX_REASON_CHARS
    );
}

#[test]
fn settle_responses() {
    let (_, a, _, json) = signed(X402Version::V1);
    let p = decode_json(X402Version::V1, &json).unwrap();
    let tx = format!("0x{}", "Ab".repeat(32));
    let settle = |body: String| {
        let r = parse_settle_response(body.as_bytes())?;
        check_settle_response(&r, &p)
    };
    for network in ["base-sepolia", "eip155:84532"] {
        let s = settle(format!(
            r#"{{"success":true,"transaction":"{tx}","network":"{network}","payer":"{}","amount":"10000"}}"#,
            a.from.to_checksum()
        ))
        .unwrap();
        assert_eq!(
            s,
            Settlement {
                transaction: tx.to_lowercase(),
                network: Network::BaseSepolia,
                payer: a.from,
                local: false
            }
        );
    }
    let e = settle(
        r#"{"success":false,"errorReason":"invalid_exact_evm_nonce_already_used","transaction":"","network":"eip155:84532"}"#.into(),
    )
    .unwrap_err();
    assert_eq!(e.code(), "settlement_failed");
    assert!(e.to_string().contains("nonce_already_used"));
    assert_eq!(
        settle(r#"{"success":false}"#.into()).unwrap_err().code(),
        "settlement_failed"
    );
    for bad in [
        r#"{"success":true,"network":"base-sepolia"}"#.to_string(),
        r#"{"success":true,"transaction":"","network":"base-sepolia"}"#.to_string(),
        r#"{"success":true,"transaction":"0x1234","network":"base-sepolia"}"#.to_string(),
        format!(r#"{{"success":true,"transaction":"{tx}"}}"#),
        format!(r#"{{"success":true,"transaction":"{tx}","network":"base"}}"#),
        format!(
            r#"{{"success":true,"transaction":"{tx}","network":"base-sepolia","payer":"0x1111111111111111111111111111111111111111"}}"#
        ),
        format!(r#"{{"success":"yes","transaction":"{tx}","network":"base-sepolia"}}"#),
        r#"{"success":true,"transaction":5,"network":"base-sepolia"}"#.to_string(),
        "not json".into(),
    ] {
        assert_eq!(
            settle(bad.clone()).unwrap_err().code(),
            "facilitator_bad_response",
            "{bad}"
        );
    }
}

// ---------------------------------------------------------------- payment-response header

fn decode_b64_json(s: &str) -> Value {
    serde_json::from_slice(&base64::engine::general_purpose::STANDARD.decode(s).unwrap()).unwrap()
}

#[test]
fn payment_response_headers() {
    let (offer, a, _, json) = signed(X402Version::V2);
    let p = decode_json(X402Version::V2, &json).unwrap();
    let settlement = Settlement {
        transaction: format!("0x{}", "ab".repeat(32)),
        network: Network::BaseSepolia,
        payer: a.from,
        local: false,
    };
    let (name, value) = payment_response_header(X402Version::V2, &settlement);
    assert_eq!(name, "PAYMENT-RESPONSE");
    assert_eq!(
        decode_b64_json(&value),
        json!({"success": true, "transaction": settlement.transaction,
               "network": "eip155:84532", "payer": a.from.to_checksum()})
    );
    let (name, value) = payment_response_header(X402Version::V1, &settlement);
    assert_eq!(name, "X-PAYMENT-RESPONSE");
    assert_eq!(decode_b64_json(&value)["network"], "base-sepolia");

    let accepted = verify_locally(&p, &offer, NOW_MS).unwrap();
    let local = local_settlement(&accepted);
    assert!(local.local);
    assert_eq!(local.transaction, format!("local:{}", accepted.fingerprint));
    let (_, value) = payment_response_header(X402Version::V2, &local);
    let v = decode_b64_json(&value);
    assert_eq!(v["localSettlement"], true);
    assert!(v["transaction"].as_str().unwrap().starts_with("local:"));
    assert_eq!(v["success"], true);

    let (name, value) = payment_failure_header(
        X402Version::V1,
        Network::BaseSepolia,
        &a.from,
        "settlement_failed",
    );
    assert_eq!(name, "X-PAYMENT-RESPONSE");
    assert_eq!(
        decode_b64_json(&value),
        json!({"success": false, "errorReason": "settlement_failed", "transaction": "",
               "network": "base-sepolia", "payer": a.from.to_checksum()})
    );
}

#[test]
fn offers_from_the_tenant_config_grammar() {
    // A price as the registry stores it (parsed and validated by TenantConfig).
    let config = claw_durable::tenant::TenantConfig::parse(
        br#"{"resourceType":"function","workerName":"demo-fn","plan":"free",
             "price":{"amountAtomic":"2500","network":"base",
                      "asset":"0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913",
                      "payTo":"0x1111111111111111111111111111111111111111"}}"#,
        "demo-fn",
    )
    .unwrap();
    let offer = Offer::from_price(
        config.price.as_ref().unwrap(),
        "https://demo-fn.402claw.dev/forecast?city=paris",
        "application/json",
    )
    .unwrap();
    let body: Value = serde_json::from_str(&offer.challenge(None).body_v1).unwrap();
    let req = &body["accepts"][0];
    assert_eq!(req["network"], "base");
    assert_eq!(req["maxAmountRequired"], "2500");
    assert_eq!(req["asset"], "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913");
    assert_eq!(req["extra"], json!({"name": "USD Coin", "version": "2"}));
    assert_eq!(req["maxTimeoutSeconds"], 60);
    assert_eq!(req["description"], "");
    assert!(req.get("outputSchema").is_none());
    let v2 = decode_b64_json(&offer.challenge(None).header_v2);
    assert_eq!(v2["accepts"][0]["network"], "eip155:8453");
    let _ = usdc_price();
}

// ---------------------------------------------------------------- fuzz-ish

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_header_strings_never_panic(s in ".{0,600}") {
        for v in [X402Version::V1, X402Version::V2] {
            prop_assert!(decode_payment_header(v, &s).is_err());
        }
    }

    #[test]
    fn random_bytes_as_base64_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
        let header = base64::engine::general_purpose::STANDARD.encode(&bytes);
        for v in [X402Version::V1, X402Version::V2] {
            let _ = decode_payment_header(v, &header);
        }
        let _ = parse_verify_response(&bytes);
        let _ = parse_settle_response(&bytes);
    }

    /// Flip, drop or insert bytes in a valid payment's JSON: decoding and checking either
    /// fail with a typed error or yield a payment that still passes every check honestly.
    #[test]
    fn mutated_payments_never_panic(
        version in prop_oneof![Just(X402Version::V1), Just(X402Version::V2)],
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..6),
    ) {
        let (offer, _, _, json) = signed(version);
        let mut bytes = json.to_string().into_bytes();
        for (at, byte, op) in edits {
            let i = at.index(bytes.len() + 1);
            match op {
                0 if i < bytes.len() => bytes[i] = byte,
                1 if i < bytes.len() => { bytes.remove(i); }
                _ => bytes.insert(i.min(bytes.len()), byte),
            }
        }
        let header = base64::engine::general_purpose::STANDARD.encode(&bytes);
        if let Ok(p) = decode_payment_header(version, &header) {
            if let Ok(ok) = verify_locally(&p, &offer, NOW_MS) {
                // Anything that still verifies is alice paying the exact price to payTo.
                prop_assert_eq!(ok.payer, TestSigner::alice().address());
                prop_assert_eq!(ok.amount_atomic, offer.amount_atomic);
                prop_assert_eq!(ok.pay_to, offer.pay_to);
            }
            let _ = facilitator_request_body(&p, &offer);
        }
    }

    /// Any authorization alice signs for the offer inside its window round-trips through
    /// both header versions and verifies; the same payment with one flaw (another amount, a
    /// window not yet open or about to close, a field changed after signing, another signer,
    /// a flipped signature byte) round-trips too and is refused. Both branches, every case.
    #[test]
    fn signed_authorizations_round_trip(
        after_back in 0u64..1_000,
        before_ahead in VALID_BEFORE_MARGIN_S + 1..1_000,
        nonce in any::<[u8; 32]>(),
        version in prop_oneof![Just(X402Version::V1), Just(X402Version::V2)],
        flaw in 0u8..6,
        delta in 1u128..=10_000,
        at in 0usize..32,
    ) {
        let offer = usdc_offer();
        let alice = TestSigner::alice();
        let encode = |a: &Authorization, sig: &EvmSignature| match version {
            X402Version::V1 => v1_json(&offer, a, sig),
            X402Version::V2 => v2_json(&offer, a, sig),
        };
        let a = Authorization {
            from: alice.address(),
            to: offer.pay_to,
            value: offer.amount_atomic,
            valid_after_s: NOW_S - after_back,
            valid_before_s: NOW_S + before_ahead,
            nonce: B256(nonce),
        };
        let sig = alice.sign_authorization(&offer, &a);
        let p = decode_json(version, &encode(&a, &sig)).unwrap();
        prop_assert_eq!(p.authorization, a);
        let got = verify_locally(&p, &offer, NOW_MS);
        prop_assert!(got.is_ok(), "{:?}", got);

        let resigned = |bad: Authorization| (bad, alice.sign_authorization(&offer, &bad));
        let (bad, bad_sig) = match flaw {
            0 if at % 2 == 0 => resigned(Authorization { value: offer.amount_atomic + delta, ..a }),
            0 => resigned(Authorization { value: offer.amount_atomic - delta.min(offer.amount_atomic), ..a }),
            1 => resigned(Authorization { valid_after_s: NOW_S + 1 + after_back, ..a }),
            2 => resigned(Authorization {
                valid_before_s: NOW_S + VALID_BEFORE_MARGIN_S - before_ahead % 500,
                ..a
            }),
            3 => {
                let mut changed = nonce;
                changed[at] ^= 1;
                (Authorization { nonce: B256(changed), ..a }, sig)
            }
            4 => (a, TestSigner::mallory().sign_authorization(&offer, &a)),
            _ => {
                let mut flipped = sig;
                flipped.r[at] ^= 1;
                (a, flipped)
            }
        };
        let p = decode_json(version, &encode(&bad, &bad_sig)).unwrap();
        prop_assert_eq!(p.authorization, bad);
        let got = verify_locally(&p, &offer, NOW_MS);
        prop_assert!(got.is_err(), "flaw {} verified: {:?}", flaw, got);
    }
}

/// The payment-identifier extension: the client's id is read from a v2 payload; absent, or
/// an echo of the server's declaration without an id, is none; a malformed one is refused.
#[test]
fn payment_identifiers_are_read_and_checked() {
    let (_, _, _, v2) = signed(X402Version::V2);
    let with_ext = |ext: Value| {
        let mut v = v2.clone();
        v["extensions"] = ext;
        decode_json(X402Version::V2, &v)
    };
    let id = "pay_7d5d747be160e280504c099d984bcfe0";
    let p =
        with_ext(json!({"payment-identifier": {"info": {"required": false, "id": id}}})).unwrap();
    assert_eq!(p.payment_id.as_deref(), Some(id));
    assert_eq!(with_ext(json!({})).unwrap().payment_id, None);
    let echo = json!({"payment-identifier": {"info": {"required": false}, "schema": {}}});
    assert_eq!(with_ext(echo).unwrap().payment_id, None);
    for bad in [
        json!("short"),
        json!("x".repeat(129)),
        json!("has space in it ok"),
        json!(42),
    ] {
        let r = with_ext(json!({"payment-identifier": {"info": {"id": bad}}}));
        assert_eq!(code(r), "invalid_payment_payload", "{bad}");
    }
    // v1 has no extensions: never an id.
    let (_, _, _, v1) = signed(X402Version::V1);
    assert_eq!(decode_json(X402Version::V1, &v1).unwrap().payment_id, None);
}
