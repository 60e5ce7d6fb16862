//! The usage routes' queries: the events feed's (`tenant` required, `stage`, `since`,
//! `limit`) and the ranking's and series' (`window`, `limit`), and the ranking cut to a
//! caller's `limit`.

use claw_durable::events::{Stage, DEFAULT_PAGE, MAX_PAGE, MAX_STATS_DAYS};
use claw_durable::problem::Problem;
use claw_durable::store::MAX_SAFE_INTEGER;
use claw_durable::tenant::validate_slug;
use claw_durable::trending::{Window, DEFAULT_TOP, MAX_TOP};

use crate::http::query::{invalid_query, Query};

/// `GET /__platform/events?tenant=&stage=&since=&limit=`. `tenant` is required: events
/// live in one object per tenant (see `claw_durable::events`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedQuery {
    pub tenant: String,
    pub stage: Option<Stage>,
    /// A `nextCursor` from an earlier page: events with a greater seq.
    pub since: Option<i64>,
    pub limit: Option<u32>,
}

impl FeedQuery {
    /// Parses and checks every parameter (unknown ones are ignored; a repeated one: the
    /// last wins).
    pub fn parse(query: Option<&str>) -> Result<FeedQuery, Problem> {
        let q = Query::parse(query);
        let tenant = q.last("tenant").ok_or_else(|| {
            invalid_query(
                "tenant",
                "required: events are kept per tenant (one object each)",
            )
        })?;
        validate_slug(tenant).map_err(|e| invalid_query("tenant", e))?;
        let stage = match q.last("stage") {
            None => None,
            Some(s) => Some(Stage::parse(s).ok_or_else(|| {
                let names = Stage::ALL.map(Stage::as_str).join(", ");
                invalid_query("stage", format!("must be one of {names}"))
            })?),
        };
        let since = q.int(
            "since",
            0..=MAX_SAFE_INTEGER,
            "must be a nextCursor of an earlier page",
        )?;
        let limit = q.int("limit", 1..=MAX_PAGE, &format!("must be 1 to {MAX_PAGE}"))?;
        Ok(FeedQuery {
            tenant: tenant.to_owned(),
            stage,
            since,
            limit,
        })
    }

    /// The path and query of the events object's `GET /events`.
    pub fn object_path(&self) -> String {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        if let Some(s) = self.stage {
            q.append_pair("stage", s.as_str());
        }
        if let Some(s) = self.since {
            q.append_pair("since", &s.to_string());
        }
        q.append_pair("limit", &self.limit.unwrap_or(DEFAULT_PAGE).to_string());
        format!("/events?{}", q.finish())
    }
}

/// `window` (default 24h) and `limit` (default 10, at most 100) of
/// `GET /__platform/trending`; `limit` is ignored where no ranking is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowQuery {
    pub window: Window,
    pub limit: u32,
}

impl WindowQuery {
    pub fn parse(query: Option<&str>) -> Result<WindowQuery, Problem> {
        let q = Query::parse(query);
        let window = match q.last("window") {
            None => Window::H24,
            Some(w) => {
                Window::parse(w).ok_or_else(|| invalid_query("window", "must be 1h, 24h or 7d"))?
            }
        };
        let limit = q.int("limit", 1..=MAX_TOP, &format!("must be 1 to {MAX_TOP}"))?;
        Ok(WindowQuery {
            window,
            limit: limit.unwrap_or(DEFAULT_TOP),
        })
    }
}

/// `days` (default 7, 1..=[`MAX_STATS_DAYS`]) of `GET /__platform/usage/{slug}/stats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatsQuery {
    pub days: u32,
}

impl StatsQuery {
    pub fn parse(query: Option<&str>) -> Result<StatsQuery, Problem> {
        let q = Query::parse(query);
        let days = q.int(
            "days",
            1..=MAX_STATS_DAYS,
            &format!("must be 1 to {MAX_STATS_DAYS}"),
        )?;
        Ok(StatsQuery {
            days: days.unwrap_or(7),
        })
    }
}

/// The trending object's `GET /top` answer `{window, nowMs, entries}` cut to `limit`
/// entries (the dispatcher fetches the top [`MAX_TOP`] once per window and serves every
/// `limit` from it).
pub fn cut_top(answer: &serde_json::Value, limit: u32) -> serde_json::Value {
    let mut out = answer.clone();
    if let Some(entries) = out.get_mut("entries").and_then(|e| e.as_array_mut()) {
        entries.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_queries() {
        assert_eq!(StatsQuery::parse(None).unwrap().days, 7);
        assert_eq!(StatsQuery::parse(Some("days=31")).unwrap().days, 31);
        for bad in ["days=0", "days=32", "days=x", "days=-1"] {
            assert_eq!(
                StatsQuery::parse(Some(bad)).unwrap_err().field.as_deref(),
                Some("days"),
                "{bad}"
            );
        }
    }

    #[test]
    fn feed_queries() {
        let q =
            FeedQuery::parse(Some("tenant=acme&stage=rate_limited&since=12&limit=3&x=1")).unwrap();
        assert_eq!(
            q,
            FeedQuery {
                tenant: "acme".into(),
                stage: Some(Stage::RateLimited),
                since: Some(12),
                limit: Some(3)
            }
        );
        assert_eq!(
            q.object_path(),
            "/events?stage=rate_limited&since=12&limit=3"
        );
        let q = FeedQuery::parse(Some("tenant=acme")).unwrap();
        assert_eq!(q.object_path(), format!("/events?limit={DEFAULT_PAGE}"));
        for (query, field) in [
            ("", "tenant"),
            ("stage=served", "tenant"),
            ("tenant=Acme", "tenant"),
            ("tenant=acme&stage=paid", "stage"),
            ("tenant=acme&since=-1", "since"),
            ("tenant=acme&since=9007199254740992", "since"),
            ("tenant=acme&limit=0", "limit"),
            ("tenant=acme&limit=501", "limit"),
        ] {
            let p = FeedQuery::parse(Some(query)).unwrap_err();
            assert_eq!(
                (p.status, &*p.code, p.field.as_deref()),
                (400, "invalid_query", Some(field)),
                "{query}"
            );
        }
        assert_eq!(
            FeedQuery::parse(None).unwrap_err().field.as_deref(),
            Some("tenant")
        );
    }

    #[test]
    fn window_queries_and_cut() {
        assert_eq!(
            WindowQuery::parse(None).unwrap(),
            WindowQuery {
                window: Window::H24,
                limit: DEFAULT_TOP
            }
        );
        assert_eq!(
            WindowQuery::parse(Some("window=7d&limit=100")).unwrap(),
            WindowQuery {
                window: Window::D7,
                limit: 100
            }
        );
        for (q, field) in [
            ("window=2h", "window"),
            ("limit=101", "limit"),
            ("limit=x", "limit"),
        ] {
            assert_eq!(
                WindowQuery::parse(Some(q)).unwrap_err().field.as_deref(),
                Some(field)
            );
        }
        let v = serde_json::json!({"window": "24h", "nowMs": 1, "entries": [1, 2, 3]});
        assert_eq!(cut_top(&v, 2)["entries"], serde_json::json!([1, 2]));
        assert_eq!(cut_top(&v, 10)["entries"], serde_json::json!([1, 2, 3]));
        assert_eq!(cut_top(&v, 2)["nowMs"], 1);
    }
}
