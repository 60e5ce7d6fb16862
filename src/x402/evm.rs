//! EVM primitives the x402 `exact` scheme carries: addresses, 32-byte nonces, 65-byte
//! signatures and uint strings. Every parser is total: bad input is an `Err`, never a panic.

use sha3::{Digest, Keccak256};
use std::fmt;

pub fn keccak256(data: &[u8]) -> [u8; 32] {
    Keccak256::digest(data).into()
}

/// `0x` or `0X` (the exact EVM scheme allows both), then the rest.
fn strip_0x(s: &str) -> Option<&str> {
    s.strip_prefix("0x").or_else(|| s.strip_prefix("0X"))
}

/// A 20-byte EVM address. Shown lowercased by `Display`; [`Address::to_checksum`] gives the
/// EIP-55 form that x402 offers use.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Address(pub [u8; 20]);

impl Address {
    /// `0x` and 40 hex digits. All-lowercase and all-uppercase are accepted as they are; a
    /// mixed-case address must carry a valid EIP-55 checksum (a wrong one is a typo).
    pub fn parse(s: &str) -> Result<Address, &'static str> {
        let hex_part = strip_0x(s).ok_or("must start with 0x")?;
        if hex_part.len() != 40 || !hex_part.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err("must be 0x followed by 40 hex digits");
        }
        let mut bytes = [0u8; 20];
        hex::decode_to_slice(hex_part, &mut bytes).map_err(|_| "is not hex")?;
        let address = Address(bytes);
        let has_upper = hex_part.bytes().any(|b| b.is_ascii_uppercase());
        let has_lower = hex_part.bytes().any(|b| b.is_ascii_lowercase());
        if has_upper && has_lower && address.to_checksum()[2..] != *hex_part {
            return Err("has an invalid EIP-55 checksum");
        }
        Ok(address)
    }

    /// `0x` + 40 lowercase hex digits.
    pub fn to_lower_hex(&self) -> String {
        format!("0x{}", hex::encode(self.0))
    }

    /// EIP-55 mixed-case checksum encoding.
    pub fn to_checksum(&self) -> String {
        let lower = hex::encode(self.0);
        let hash = keccak256(lower.as_bytes());
        let mut out = String::with_capacity(42);
        out.push_str("0x");
        for (i, c) in lower.chars().enumerate() {
            // Nibble i of the hash decides the case of hex digit i.
            let byte = hash[i / 2];
            let nibble = if i % 2 == 0 { byte >> 4 } else { byte & 0x0f };
            if nibble >= 8 {
                out.push(c.to_ascii_uppercase());
            } else {
                out.push(c);
            }
        }
        out
    }

    /// The address of an uncompressed secp256k1 public key (`0x04 || X || Y`).
    pub fn from_uncompressed_pubkey(point: &[u8; 65]) -> Address {
        let hash = keccak256(&point[1..]);
        let mut bytes = [0u8; 20];
        bytes.copy_from_slice(&hash[12..]);
        Address(bytes)
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_lower_hex())
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Address({})", self.to_lower_hex())
    }
}

/// A 32-byte value (`bytes32`): the EIP-3009 nonce.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct B256(pub [u8; 32]);

impl B256 {
    /// `0x` and exactly 64 hex digits.
    pub fn parse(s: &str) -> Result<B256, &'static str> {
        let hex_part = strip_0x(s).ok_or("must start with 0x")?;
        if hex_part.len() != 64 {
            return Err("must be 0x followed by 64 hex digits");
        }
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(hex_part, &mut bytes).map_err(|_| "is not hex")?;
        Ok(B256(bytes))
    }

    pub fn to_lower_hex(&self) -> String {
        format!("0x{}", hex::encode(self.0))
    }
}

impl fmt::Debug for B256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "B256({})", self.to_lower_hex())
    }
}

/// A 65-byte `r || s || v` ECDSA signature as wallets produce it for EIP-712. `v` is kept
/// normalized to the recovery id (0 or 1); 27/28 and 0/1 on the wire are the same signature.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct EvmSignature {
    pub r: [u8; 32],
    pub s: [u8; 32],
    /// 0 or 1: the parity of the signature point's y.
    pub recovery_id: u8,
}

impl EvmSignature {
    /// `0x` and 130 hex digits; `v` (the last byte) must be 0, 1, 27 or 28. Longer
    /// signatures (ERC-1271 / ERC-6492 smart wallets) are not accepted.
    pub fn parse(s: &str) -> Result<EvmSignature, &'static str> {
        let hex_part = strip_0x(s).ok_or("must start with 0x")?;
        if hex_part.len() != 130 {
            return Err("must be 0x followed by 130 hex digits (65 bytes)");
        }
        let mut bytes = [0u8; 65];
        hex::decode_to_slice(hex_part, &mut bytes).map_err(|_| "is not hex")?;
        let (r, rest) = bytes.split_at(32);
        let (s, v) = rest.split_at(32);
        let recovery_id = match v {
            [0] | [27] => 0,
            [1] | [28] => 1,
            _ => return Err("has a v other than 0, 1, 27 or 28"),
        };
        let mut sig = EvmSignature {
            r: [0; 32],
            s: [0; 32],
            recovery_id,
        };
        sig.r.copy_from_slice(r);
        sig.s.copy_from_slice(s);
        Ok(sig)
    }

    /// The canonical wire form: `0x` + r + s + v with v as 27 or 28, lowercase.
    pub fn to_hex(&self) -> String {
        let mut bytes = [0u8; 65];
        bytes[..32].copy_from_slice(&self.r);
        bytes[32..64].copy_from_slice(&self.s);
        bytes[64] = 27 + self.recovery_id;
        format!("0x{}", hex::encode(bytes))
    }
}

impl fmt::Debug for EvmSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EvmSignature({})", self.to_hex())
    }
}

/// A uint as x402 writes it: a decimal string, digits only, no sign, no leading zeros
/// (a lone "0" is fine), that fits in `u128`.
pub fn parse_u128_dec(s: &str) -> Result<u128, &'static str> {
    check_decimal(s, 39)?;
    s.parse::<u128>().map_err(|_| "is too large")
}

/// Like [`parse_u128_dec`], for Unix timestamps in seconds.
pub fn parse_u64_dec(s: &str) -> Result<u64, &'static str> {
    check_decimal(s, 20)?;
    s.parse::<u64>().map_err(|_| "is too large")
}

fn check_decimal(s: &str, max_digits: usize) -> Result<(), &'static str> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err("must be a decimal integer string");
    }
    if s.len() > 1 && s.starts_with('0') {
        return Err("must not have leading zeros");
    }
    if s.len() > max_digits {
        return Err("is too large");
    }
    Ok(())
}

/// A `uint256` ABI word holding `v`.
pub fn u256_word(v: u128) -> [u8; 32] {
    let mut word = [0u8; 32];
    word[16..].copy_from_slice(&v.to_be_bytes());
    word
}

/// An `address` ABI word: left-padded to 32 bytes.
pub fn address_word(a: &Address) -> [u8; 32] {
    let mut word = [0u8; 32];
    word[12..].copy_from_slice(&a.0);
    word
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eip55_vectors_from_the_eip() {
        for addr in [
            "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
            "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
            "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
            "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
            "0x036CbD53842c5426634e7929541eC2318f3dCF7e",
        ] {
            let a = Address::parse(addr).unwrap();
            assert_eq!(a.to_checksum(), addr);
            assert_eq!(Address::parse(&addr.to_ascii_lowercase()).unwrap(), a);
            assert_eq!(
                Address::parse(&format!("0x{}", addr[2..].to_ascii_uppercase())).unwrap(),
                a
            );
        }
    }

    #[test]
    fn bad_addresses() {
        for bad in [
            "",
            "0x",
            "5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
            "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAe",
            "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAedd",
            "0xgaAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
            // One letter's case flipped: checksum fails.
            "0x5AAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
            "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeé",
        ] {
            assert!(Address::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn decimals_are_exact() {
        assert_eq!(parse_u128_dec("0"), Ok(0));
        assert_eq!(parse_u128_dec("10000"), Ok(10_000));
        assert_eq!(parse_u128_dec(&u128::MAX.to_string()), Ok(u128::MAX));
        assert_eq!(parse_u64_dec(&u64::MAX.to_string()), Ok(u64::MAX));
        for bad in [
            "",
            "-1",
            "+1",
            "01",
            "1.0",
            "1e3",
            " 1",
            "0x10",
            "340282366920938463463374607431768211456",
            &"9".repeat(100),
        ] {
            assert!(parse_u128_dec(bad).is_err(), "{bad}");
        }
        assert!(parse_u64_dec("18446744073709551616").is_err());
    }

    #[test]
    fn signatures_and_nonces() {
        let body = "11".repeat(64);
        for (v, id) in [("00", 0), ("01", 1), ("1b", 0), ("1c", 1)] {
            let s = EvmSignature::parse(&format!("0x{body}{v}")).unwrap();
            assert_eq!(s.recovery_id, id);
            assert!(s.to_hex().ends_with(if id == 0 { "1b" } else { "1c" }));
        }
        for bad in ["02", "1a", "1d", "ff"] {
            assert!(EvmSignature::parse(&format!("0x{body}{bad}")).is_err());
        }
        assert!(EvmSignature::parse(&format!("0x{body}")).is_err());
        assert!(EvmSignature::parse(&format!("0x{body}1b00")).is_err());
        assert!(EvmSignature::parse(&format!("{body}1b")).is_err());
        assert!(B256::parse(&format!("0x{}", "ab".repeat(32))).is_ok());
        assert!(B256::parse(&format!("0x{}", "ab".repeat(31))).is_err());
        assert!(B256::parse(&format!("0x{}zz", "ab".repeat(31))).is_err());
    }
}
