//! Tenant configs cached in the isolate.
//!
//! A config read from the registry is reused for [`TTL_MS`] (5 s); unknown slugs are cached
//! too, so a storm of requests for a missing tenant does not reach the registry each time.
//! So a change made through the admin API reaches every isolate within 5 s (at once in the
//! isolate that served the change). At most [`MAX_ENTRIES`] slugs are held.
//!
//! One refresh at a time per slug ([`ConfigCache::lookup`]): when an entry expires, the first
//! request refreshes it and the others keep the expired value for as long as that refresh
//! runs, at most [`REFRESH_WAIT_MS`]. Without this, every request that arrived while the
//! registry answered also asked it: under load, each expiry became a burst of registry
//! round trips on the hot path (measured: process-wide stalls of seconds, every 5 s, with
//! `scripts/bench/stalls.mjs`). A change therefore reaches an isolate within [`TTL_MS`] plus
//! one registry round trip.

use std::collections::HashMap;

pub const TTL_MS: i64 = 5_000;
pub const MAX_ENTRIES: usize = 10_000;
/// How long other requests keep an expired entry while one request refreshes it; past
/// this, the refresh is presumed lost and the next request refreshes again.
pub const REFRESH_WAIT_MS: i64 = 2_000;
const _: () = assert!(REFRESH_WAIT_MS < TTL_MS);

pub struct ConfigCache<V> {
    entries: HashMap<String, (Option<V>, i64)>,
    /// Slugs one request is refreshing, since when.
    refreshing: HashMap<String, i64>,
}

impl<V: Clone> Default for ConfigCache<V> {
    fn default() -> Self {
        ConfigCache {
            entries: HashMap::new(),
            refreshing: HashMap::new(),
        }
    }
}

/// What the cache knows about a slug.
#[derive(Debug, PartialEq)]
pub enum Lookup<V> {
    /// Fresh: `Some` config, or `None` for a tenant known not to exist.
    Hit(Option<V>),
    Miss,
}

impl<V: Clone> ConfigCache<V> {
    pub fn get(&self, slug: &str, now_ms: i64) -> Lookup<V> {
        match self.entries.get(slug) {
            Some((v, at)) if now_ms >= *at && now_ms - *at < TTL_MS => Lookup::Hit(v.clone()),
            _ => Lookup::Miss,
        }
    }

    /// [`ConfigCache::get`], with one refresh at a time: a fresh entry is a hit; an expired
    /// one is a hit too while another request refreshes it (for at most
    /// [`REFRESH_WAIT_MS`]); otherwise a miss, and the caller is now the one refreshing (it
    /// ends with [`ConfigCache::put`] or [`ConfigCache::refresh_failed`]).
    pub fn lookup(&mut self, slug: &str, now_ms: i64) -> Lookup<V> {
        if let Lookup::Hit(v) = self.get(slug, now_ms) {
            return Lookup::Hit(v);
        }
        let refreshing = self
            .refreshing
            .get(slug)
            .is_some_and(|&since| now_ms >= since && now_ms - since < REFRESH_WAIT_MS);
        if refreshing {
            if let Some((v, _)) = self.entries.get(slug) {
                return Lookup::Hit(v.clone());
            }
        }
        if self.refreshing.len() >= MAX_ENTRIES {
            self.refreshing
                .retain(|_, since| now_ms >= *since && now_ms - *since < REFRESH_WAIT_MS);
        }
        self.refreshing.insert(slug.to_owned(), now_ms);
        Lookup::Miss
    }

    /// The refresh [`ConfigCache::lookup`] asked for could not be made: the next request
    /// tries again.
    pub fn refresh_failed(&mut self, slug: &str) {
        self.refreshing.remove(slug);
    }

    pub fn put(&mut self, slug: &str, value: Option<V>, now_ms: i64) {
        self.refreshing.remove(slug);
        if self.entries.len() >= MAX_ENTRIES && !self.entries.contains_key(slug) {
            self.entries.retain(|_, (_, at)| now_ms - *at < TTL_MS);
            if self.entries.len() >= MAX_ENTRIES {
                self.entries.clear();
            }
        }
        self.entries.insert(slug.to_owned(), (value, now_ms));
    }

    pub fn invalidate(&mut self, slug: &str) {
        self.entries.remove(slug);
        self.refreshing.remove(slug);
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expires_after_ttl_and_caches_absence() {
        let mut c = ConfigCache::default();
        c.put("a", Some(1), 1_000);
        c.put("gone", None, 1_000);
        assert_eq!(c.get("a", 1_000 + TTL_MS - 1), Lookup::Hit(Some(1)));
        assert_eq!(c.get("gone", 1_500), Lookup::Hit(None));
        assert_eq!(c.get("a", 1_000 + TTL_MS), Lookup::Miss);
        // A clock that went backwards is not trusted.
        assert_eq!(c.get("a", 999), Lookup::Miss);
        c.invalidate("gone");
        assert_eq!(c.get("gone", 1_500), Lookup::Miss);
    }

    #[test]
    fn one_request_refreshes_an_expired_entry_while_the_others_keep_it() {
        let mut c = ConfigCache::default();
        c.put("a", Some(1), 0);
        assert_eq!(c.lookup("a", TTL_MS - 1), Lookup::Hit(Some(1)));
        // Expired: the first request refreshes, the others keep the old value meanwhile.
        assert_eq!(c.lookup("a", TTL_MS), Lookup::Miss);
        assert_eq!(c.lookup("a", TTL_MS + 1), Lookup::Hit(Some(1)));
        assert_eq!(
            c.lookup("a", TTL_MS + REFRESH_WAIT_MS - 1),
            Lookup::Hit(Some(1))
        );
        // A refresh that never ended is presumed lost: the next request refreshes.
        assert_eq!(c.lookup("a", TTL_MS + REFRESH_WAIT_MS), Lookup::Miss);
        // The refresh lands: fresh again, for everyone.
        c.put("a", Some(2), TTL_MS + REFRESH_WAIT_MS + 10);
        assert_eq!(
            c.lookup("a", TTL_MS + REFRESH_WAIT_MS + 11),
            Lookup::Hit(Some(2))
        );
        // A failed refresh lets the next request try at once.
        assert_eq!(c.lookup("a", 3 * TTL_MS), Lookup::Miss);
        c.refresh_failed("a");
        assert_eq!(c.lookup("a", 3 * TTL_MS + 1), Lookup::Miss);
        // Nothing known yet: every request asks (there is nothing to keep).
        assert_eq!(c.lookup("new", 0), Lookup::Miss);
        assert_eq!(c.lookup("new", 1), Lookup::Miss);
        // An invalidated entry is not kept, even while a refresh runs.
        c.put("b", Some(1), 0);
        assert_eq!(c.lookup("b", TTL_MS), Lookup::Miss);
        c.invalidate("b");
        assert_eq!(c.lookup("b", TTL_MS + 1), Lookup::Miss);
    }

    #[test]
    fn stays_bounded() {
        let mut c = ConfigCache::default();
        for i in 0..(MAX_ENTRIES * 2) {
            c.put(&format!("t{i}"), Some(i), 0);
            assert!(c.len() <= MAX_ENTRIES);
        }
    }
}
