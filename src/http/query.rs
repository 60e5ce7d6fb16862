//! A platform route's query string: read once, the last value of a repeated parameter wins,
//! unknown parameters are ignored, and every refusal is 400 `invalid_query` naming the
//! parameter.

use std::fmt::Display;
use std::ops::RangeInclusive;
use std::str::FromStr;

use claw_durable::problem::{Code, Problem};

pub fn invalid_query(field: &str, detail: impl Into<String>) -> Problem {
    Problem::new(Code::InvalidQuery).field(field).detail(detail)
}

pub struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    pub fn parse(query: Option<&str>) -> Query {
        let pairs = url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        Query { pairs }
    }

    /// The last value of `name`.
    pub fn last(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The last value of `name` as an integer in `range`; `None` when absent; otherwise
    /// `invalid_query` with `detail`.
    pub fn int<T>(
        &self,
        name: &str,
        range: RangeInclusive<T>,
        detail: &str,
    ) -> Result<Option<T>, Problem>
    where
        T: FromStr + PartialOrd + Display + Copy,
    {
        let Some(raw) = self.last(name) else {
            return Ok(None);
        };
        raw.parse::<T>()
            .ok()
            .filter(|v| range.contains(v))
            .map(Some)
            .ok_or_else(|| invalid_query(name, detail))
    }

    /// The last value of each parameter in `keep`, re-encoded (`?a=1&b=2`, or empty):
    /// nothing else goes on to an object.
    pub fn forward(&self, keep: &[&str]) -> String {
        let mut out = url::form_urlencoded::Serializer::new(String::new());
        for k in keep {
            if let Some(v) = self.last(k) {
                out.append_pair(k, v);
            }
        }
        let q = out.finish();
        if q.is_empty() {
            q
        } else {
            format!("?{q}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_value_wins_and_integers_are_bounded() {
        let q = Query::parse(Some("limit=5&limit=7&x=%20y&n=0"));
        assert_eq!(q.last("limit"), Some("7"));
        assert_eq!(q.last("x"), Some(" y"));
        assert_eq!(q.int("limit", 1..=10u32, "1 to 10"), Ok(Some(7)));
        assert_eq!(q.int("absent", 1..=10u32, "1 to 10"), Ok(None));
        let p = q.int("n", 1..=10u32, "n must be 1 to 10").unwrap_err();
        assert_eq!(
            (p.status, &*p.code, p.field.as_deref()),
            (400, "invalid_query", Some("n"))
        );
        assert!(q.int("x", 0..=10u32, "d").is_err());
    }

    #[test]
    fn forwarding_keeps_only_known_keys_re_encoded() {
        let f = |q: &str, keep: &[&str]| Query::parse(Some(q)).forward(keep);
        assert_eq!(
            f("after=5&limit=10&x=1", &["after", "limit"]),
            "?after=5&limit=10"
        );
        assert_eq!(f("after=1&after=7", &["after"]), "?after=7");
        assert_eq!(Query::parse(None).forward(&["days"]), "");
        assert_eq!(
            f("days=1%262", &["days"]),
            "?days=1%262",
            "values cannot smuggle parameters"
        );
    }
}
