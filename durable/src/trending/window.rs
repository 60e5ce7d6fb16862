//! Window arithmetic (pure): bucket grains, window ranges, expiry, caps.

use serde::{Deserialize, Serialize};

pub const FINE_MS: i64 = 5 * 60_000;
pub const COARSE_MS: i64 = 60 * 60_000;

/// A bucket size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Grain {
    /// 5 minutes.
    Fine,
    /// 1 hour.
    Coarse,
}

impl Grain {
    pub const ALL: [Grain; 2] = [Grain::Fine, Grain::Coarse];

    pub const fn ms(self) -> i64 {
        match self {
            Grain::Fine => FINE_MS,
            Grain::Coarse => COARSE_MS,
        }
    }

    pub fn from_ms(ms: i64) -> Option<Grain> {
        Grain::ALL.into_iter().find(|g| g.ms() == ms)
    }

    /// The longest window counted in buckets of this grain: it decides when a bucket expires.
    pub const fn longest_window(self) -> Window {
        match self {
            Grain::Fine => Window::H1,
            Grain::Coarse => Window::D7,
        }
    }

    pub(super) const fn index(self) -> usize {
        match self {
            Grain::Fine => 0,
            Grain::Coarse => 1,
        }
    }
}

/// A ranking window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Window {
    #[serde(rename = "1h")]
    H1,
    #[serde(rename = "24h")]
    H24,
    #[serde(rename = "7d")]
    D7,
}

impl Window {
    pub const ALL: [Window; 3] = [Window::H1, Window::H24, Window::D7];

    pub const fn grain(self) -> Grain {
        match self {
            Window::H1 => Grain::Fine,
            Window::H24 | Window::D7 => Grain::Coarse,
        }
    }

    /// How many buckets of [`Window::grain`] the window covers.
    pub const fn buckets(self) -> i64 {
        match self {
            Window::H1 => 12,
            Window::H24 => 24,
            Window::D7 => 168,
        }
    }

    pub const fn len_ms(self) -> i64 {
        self.buckets() * self.grain().ms()
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Window::H1 => "1h",
            Window::H24 => "24h",
            Window::D7 => "7d",
        }
    }

    pub fn parse(s: &str) -> Option<Window> {
        Window::ALL.into_iter().find(|w| w.as_str() == s)
    }
}

/// Start of the bucket of `grain` that holds `t_ms`. Buckets are aligned to the epoch, so
/// every object agrees on them.
pub fn bucket_start(t_ms: i64, grain: Grain) -> i64 {
    t_ms.saturating_sub(t_ms.rem_euclid(grain.ms()))
}

/// The first instant of the bucket after the one holding `t_ms`.
pub fn next_boundary(t_ms: i64, grain: Grain) -> i64 {
    bucket_start(t_ms, grain).saturating_add(grain.ms())
}

/// The bucket starts `window` covers at `now_ms`, both inclusive: the bucket holding `now_ms`
/// and the `buckets() - 1` before it.
pub fn window_range(window: Window, now_ms: i64) -> (i64, i64) {
    let g = window.grain();
    let last = bucket_start(now_ms, g);
    let first = last.saturating_sub((window.buckets() - 1).saturating_mul(g.ms()));
    (first, last)
}

/// Whether the bucket starting at `start_ms` counts in `window` at `now_ms`.
pub fn covers(window: Window, start_ms: i64, now_ms: i64) -> bool {
    let (first, last) = window_range(window, now_ms);
    (first..=last).contains(&start_ms)
}

/// The first bucket start of `grain` still kept at `now_ms`; older ones are expired.
pub fn expiry_cutoff(grain: Grain, now_ms: i64) -> i64 {
    window_range(grain.longest_window(), now_ms).0
}

/// A bucket is expired when no window counted in its grain covers it any more. Buckets ahead
/// of `now_ms` (clock skew) are not expired: they are counted once `now` reaches them.
pub fn bucket_expired(grain: Grain, start_ms: i64, now_ms: i64) -> bool {
    start_ms < expiry_cutoff(grain, now_ms)
}

/// A window total computed at `as_of_ms` has nothing left in the window at `now_ms`: every
/// bucket it covered, up to the one holding `as_of_ms`, has left the window.
pub fn snapshot_expired(window: Window, as_of_ms: i64, now_ms: i64) -> bool {
    bucket_start(as_of_ms, window.grain()) < window_range(window, now_ms).0
}

/// One identity's contribution to ranked calls.
pub fn capped(calls: u64, cap: u64) -> u64 {
    calls.min(cap)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trending::fixtures::*;

    #[test]
    fn t0_is_aligned() {
        assert_eq!(T0 % COARSE_MS, 0);
    }

    #[test]
    fn bucket_edges() {
        for g in Grain::ALL {
            let ms = g.ms();
            assert_eq!(bucket_start(T0, g), T0);
            assert_eq!(bucket_start(T0 + ms - 1, g), T0);
            assert_eq!(bucket_start(T0 + ms, g), T0 + ms);
            assert_eq!(bucket_start(T0 - 1, g), T0 - ms);
            assert_eq!(next_boundary(T0, g), T0 + ms);
            assert_eq!(next_boundary(T0 + ms - 1, g), T0 + ms);
            assert_eq!(bucket_start(0, g), 0);
            assert_eq!(bucket_start(-1, g), -ms);
            assert_eq!(Grain::from_ms(ms), Some(g));
            // Extreme inputs saturate instead of overflowing.
            let _ = bucket_start(i64::MIN, g);
            let _ = next_boundary(i64::MAX, g);
            let _ = window_range(Window::D7, i64::MIN);
        }
        assert_eq!(Grain::from_ms(60_000), None);
    }

    #[test]
    fn windows_cover_exactly_their_buckets() {
        let lens = [HOUR, DAY, 7 * DAY];
        for (w, len) in Window::ALL.into_iter().zip(lens) {
            assert_eq!(w.len_ms(), len);
            assert_eq!(Window::parse(w.as_str()), Some(w));
            assert_eq!(
                serde_json::to_string(&w).unwrap(),
                format!("\"{}\"", w.as_str())
            );
            let g = w.grain().ms();
            for now in [T0, T0 + 1, T0 + g - 1] {
                let (first, last) = window_range(w, now);
                assert_eq!(last, T0);
                assert_eq!((last - first) / g + 1, w.buckets());
                assert!(covers(w, first, now) && covers(w, last, now));
                assert!(!covers(w, first - g, now), "the bucket before the window");
                assert!(!covers(w, last + g, now), "the future bucket");
            }
            // A call at T0 stays in the window until the window has moved a full length.
            assert!(covers(w, T0, T0 + len - 1));
            assert!(!covers(w, T0, T0 + len));
        }
        assert_eq!(Window::parse("2h"), None);
    }

    #[test]
    fn expiry_follows_the_longest_window_of_the_grain() {
        for g in Grain::ALL {
            let len = g.longest_window().len_ms();
            assert!(!bucket_expired(g, T0, T0 + len - 1));
            assert!(bucket_expired(g, T0, T0 + len));
            assert_eq!(expiry_cutoff(g, T0 + len), T0 + g.ms());
            assert!(
                !bucket_expired(g, T0 + 3 * g.ms(), T0),
                "future buckets are kept"
            );
        }
        // A snapshot lives while the bucket holding its as_of is in the window.
        assert!(!snapshot_expired(Window::H1, T0 + 5, T0 + HOUR - 1));
        assert!(snapshot_expired(Window::H1, T0 + 5, T0 + HOUR));
        assert!(!snapshot_expired(Window::H1, T0 + FINE_MS, T0 + HOUR));
        assert!(!snapshot_expired(Window::D7, T0, T0 + 7 * DAY - 1));
        assert!(snapshot_expired(Window::D7, T0, T0 + 7 * DAY));
    }
}
