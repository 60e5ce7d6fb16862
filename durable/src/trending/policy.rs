//! The anti-manipulation policy: per-identity caps and the per-bucket identity bound.

use super::Window;

/// The anti-manipulation bounds. Code, not config: every object must agree on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrendPolicy {
    /// Most calls one identity adds to a tenant's ranked calls in the 1h window.
    pub payer_cap_1h: u64,
    pub payer_cap_24h: u64,
    pub payer_cap_7d: u64,
    /// Identities tracked per tenant per bucket (per grain). Bounds the tenant object's
    /// per-payer rows to (12 + 1 + 168 + 1) x this.
    pub max_payers_per_bucket: u32,
}

impl Default for TrendPolicy {
    fn default() -> Self {
        TrendPolicy {
            payer_cap_1h: 60,
            payer_cap_24h: 600,
            payer_cap_7d: 2_000,
            max_payers_per_bucket: 1_000,
        }
    }
}

impl TrendPolicy {
    /// The cap in force for `window`; at least 1, so every tracked identity counts.
    pub fn payer_cap(&self, window: Window) -> u64 {
        let cap = match window {
            Window::H1 => self.payer_cap_1h,
            Window::H24 => self.payer_cap_24h,
            Window::D7 => self.payer_cap_7d,
        };
        cap.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trending::*;

    #[test]
    fn caps_bound_one_identity() {
        assert_eq!(capped(5, 3), 3);
        assert_eq!(capped(2, 3), 2);
        assert_eq!(capped(0, 3), 0);
        let p = TrendPolicy {
            payer_cap_1h: 0,
            ..TrendPolicy::default()
        };
        assert_eq!(
            p.payer_cap(Window::H1),
            1,
            "a zero cap still counts each identity"
        );
        assert_eq!(p.payer_cap(Window::D7), TrendPolicy::default().payer_cap_7d);
    }
}
