//! Amounts: atomic units (decimal integer strings, as the API speaks them) and whole units
//! (what people type and read: `0.001` USDC), converted with string arithmetic only. Money
//! never goes through floats.

use claw_durable::tenant::parse_atomic_amount;

/// USDC (and the local ClawUSD) have 6 decimals: the default for `--price` and for display.
pub const DEFAULT_DECIMALS: u32 = 6;

/// The most decimals accepted (an ERC-20 token has at most 18 in practice; 38 keeps u128).
pub const MAX_DECIMALS: u32 = 36;

/// `"1000"` with 6 decimals is `"0.001"`; trailing fractional zeros are dropped. A value
/// that is not an atomic amount is shown as it came (the API's text is never rewritten into
/// something it did not say).
pub fn to_whole(atomic: &str, decimals: u32) -> String {
    if parse_atomic_amount(atomic).is_err() {
        return atomic.to_owned();
    }
    let d = decimals as usize;
    if d == 0 {
        return atomic.to_owned();
    }
    let padded = format!("{atomic:0>width$}", width = d + 1);
    let (int, frac) = padded.split_at(padded.len() - d);
    let frac = frac.trim_end_matches('0');
    if frac.is_empty() {
        int.to_owned()
    } else {
        format!("{int}.{frac}")
    }
}

/// `"0.001"` with 6 decimals is `"1000"`. Accepts `123`, `1.5`, `.5`; refuses signs,
/// exponents, separators, more fractional digits than the token has, and amounts beyond
/// u128.
pub fn to_atomic(whole: &str, decimals: u32) -> Result<String, String> {
    if decimals > MAX_DECIMALS {
        return Err(format!("at most {MAX_DECIMALS} decimals"));
    }
    let (int, frac) = whole.split_once('.').unwrap_or((whole, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (int.is_empty() && frac.is_empty()) || !digits(int) || !digits(frac) {
        return Err(format!(
            "{whole:?} is not an amount: write whole units like 0.001"
        ));
    }
    if frac.len() > decimals as usize {
        return Err(format!(
            "{whole:?} has more than {decimals} decimal places (the token's smallest unit)"
        ));
    }
    let mut atomic = String::with_capacity(int.len() + decimals as usize);
    atomic.push_str(int);
    atomic.push_str(frac);
    for _ in frac.len()..decimals as usize {
        atomic.push('0');
    }
    let trimmed = atomic.trim_start_matches('0');
    let atomic = if trimmed.is_empty() { "0" } else { trimmed };
    parse_atomic_amount(atomic).map_err(|e| format!("{whole:?}: {e}"))?;
    Ok(atomic.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_to_whole_units() {
        assert_eq!(to_whole("1000", 6), "0.001");
        assert_eq!(to_whole("0", 6), "0");
        assert_eq!(to_whole("1", 6), "0.000001");
        assert_eq!(to_whole("1000000", 6), "1");
        assert_eq!(to_whole("1234567", 6), "1.234567");
        assert_eq!(to_whole("1500000", 6), "1.5");
        assert_eq!(to_whole("42", 0), "42");
        // u128::MAX stays exact.
        assert_eq!(
            to_whole("340282366920938463463374607431768211455", 18),
            "340282366920938463463.374607431768211455"
        );
        // Not an atomic amount: shown as received.
        assert_eq!(to_whole("-5", 6), "-5");
        assert_eq!(to_whole("1e3", 6), "1e3");
    }

    #[test]
    fn whole_units_to_atomic() {
        assert_eq!(to_atomic("0.001", 6).unwrap(), "1000");
        assert_eq!(to_atomic("1", 6).unwrap(), "1000000");
        assert_eq!(to_atomic(".5", 6).unwrap(), "500000");
        assert_eq!(to_atomic("1.", 6).unwrap(), "1000000");
        assert_eq!(to_atomic("0", 6).unwrap(), "0");
        assert_eq!(to_atomic("007.25", 2).unwrap(), "725");
        assert_eq!(to_atomic("0.000001", 6).unwrap(), "1");
        for bad in [
            "", ".", "-1", "+1", "1e-3", "1,5", " 1", "0x10", "1.2.3", "NaN",
        ] {
            assert!(to_atomic(bad, 6).is_err(), "{bad:?}");
        }
        assert!(to_atomic("0.0000001", 6)
            .unwrap_err()
            .contains("6 decimal places"));
        assert!(to_atomic("340282366920938463463374607431768211456", 0).is_err());
    }

    #[test]
    fn round_trips_exactly() {
        for atomic in [
            "1",
            "10",
            "999999",
            "1000000",
            "123456789012345678901234567890",
        ] {
            assert_eq!(to_atomic(&to_whole(atomic, 6), 6).unwrap(), atomic);
        }
        // 0.1 + 0.2 in floats is 0.30000000000000004; here it is what was typed.
        assert_eq!(to_atomic("0.3", 18).unwrap(), "300000000000000000");
    }
}
