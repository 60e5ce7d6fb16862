//! Tenant configs cached in the isolate.
//!
//! A config read from the registry is reused for [`TTL_MS`] (5 s); unknown slugs are cached
//! too, so a storm of requests for a missing tenant does not reach the registry each time.
//! So a change made through the admin API reaches every isolate within 5 s (at once in the
//! isolate that served the change). At most [`MAX_ENTRIES`] slugs are held.

use std::collections::HashMap;

pub const TTL_MS: i64 = 5_000;
pub const MAX_ENTRIES: usize = 10_000;

pub struct ConfigCache<V> {
    entries: HashMap<String, (Option<V>, i64)>,
}

impl<V: Clone> Default for ConfigCache<V> {
    fn default() -> Self {
        ConfigCache {
            entries: HashMap::new(),
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

    pub fn put(&mut self, slug: &str, value: Option<V>, now_ms: i64) {
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
    fn stays_bounded() {
        let mut c = ConfigCache::default();
        for i in 0..(MAX_ENTRIES * 2) {
            c.put(&format!("t{i}"), Some(i), 0);
            assert!(c.len() <= MAX_ENTRIES);
        }
    }
}
