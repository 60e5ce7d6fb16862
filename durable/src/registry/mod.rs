//! The tenant registry's rules, over [`SqlStore`].
//!
//! One registry object holds every tenant config: operators write it through the admin API,
//! the dispatcher reads it (and caches it briefly per isolate). Configs are stored as their
//! canonical JSON; `version` increases on every change so caches can tell old from new.
//! The same object keeps the creator keys ([`keys`]): hashed, scoped to tenant slugs.

use serde::{Deserialize, Serialize};

use crate::problem::Problem;
use crate::store::{Row, SqlStore, SqlValue, StoreError};
use crate::tenant::TenantConfig;

pub mod keys;
#[cfg(target_arch = "wasm32")]
pub mod object;

pub const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS tenants (
    slug TEXT PRIMARY KEY,
    config TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('active', 'suspended')),
    version INTEGER NOT NULL,
    created_at_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL
)";

pub const MAX_PAGE: u32 = 100;
/// A page of the paid listing (`Registry::paid_active`): discovery reads every active paid
/// tenant, so its pages are larger than the admin API's.
pub const MAX_LISTING_PAGE: u32 = 1_000;
pub const DEFAULT_PAGE: u32 = 50;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TenantStatus {
    Active,
    Suspended,
}

impl TenantStatus {
    fn as_str(self) -> &'static str {
        match self {
            TenantStatus::Active => "active",
            TenantStatus::Suspended => "suspended",
        }
    }
}

/// A stored tenant: its config plus what the registry knows about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TenantRecord {
    pub config: TenantConfig,
    pub status: TenantStatus,
    pub version: i64,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TenantPage {
    pub tenants: Vec<TenantRecord>,
    /// Pass as `after` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RegistryError {
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    #[error("stored config for {slug} is unreadable: {reason}")]
    Corrupt { slug: String, reason: String },
}

impl From<RegistryError> for Problem {
    fn from(e: RegistryError) -> Problem {
        Problem::internal(e.to_string())
    }
}

pub struct Registry<'s, S: SqlStore> {
    store: &'s mut S,
}

const COLUMNS: &str = "slug, config, status, version, created_at_ms, updated_at_ms";

fn record(row: &Row) -> Result<TenantRecord, RegistryError> {
    let slug = row.text(0)?;
    let corrupt = |reason: String| RegistryError::Corrupt {
        slug: slug.to_owned(),
        reason,
    };
    let config: TenantConfig =
        serde_json::from_str(row.text(1)?).map_err(|e| corrupt(e.to_string()))?;
    let status = match row.text(2)? {
        "active" => TenantStatus::Active,
        "suspended" => TenantStatus::Suspended,
        other => return Err(corrupt(format!("status {other:?}"))),
    };
    Ok(TenantRecord {
        config,
        status,
        version: row.int(3)?,
        created_at_ms: row.int(4)?,
        updated_at_ms: row.int(5)?,
    })
}

impl<'s, S: SqlStore> Registry<'s, S> {
    /// Opens the registry, creating its table on first use.
    pub fn open(store: &'s mut S) -> Result<Self, RegistryError> {
        store.exec(SCHEMA, &[])?;
        Ok(Registry { store })
    }

    pub fn get(&mut self, slug: &str) -> Result<Option<TenantRecord>, RegistryError> {
        let sql = format!("SELECT {COLUMNS} FROM tenants WHERE slug = ?");
        self.store
            .query_opt(&sql, &[slug.into()])?
            .as_ref()
            .map(record)
            .transpose()
    }

    /// Creates or replaces a tenant's config. A replaced tenant keeps its status: suspension
    /// is an operator decision, not part of the config. Returns the record and whether it
    /// was created.
    pub fn put(
        &mut self,
        config: &TenantConfig,
        now_ms: i64,
    ) -> Result<(TenantRecord, bool), RegistryError> {
        let json = serde_json::to_string(config).map_err(|e| RegistryError::Corrupt {
            slug: config.slug.clone(),
            reason: e.to_string(),
        })?;
        let slug = config.slug.clone();
        self.store
            .atomically(&mut |s| {
                let created = s
                    .query_opt(
                        "SELECT 1 FROM tenants WHERE slug = ?",
                        &[slug.as_str().into()],
                    )?
                    .is_none();
                s.exec(
                "INSERT INTO tenants (slug, config, status, version, created_at_ms, updated_at_ms)
                 VALUES (?, ?, 'active', 1, ?, ?)
                 ON CONFLICT (slug) DO UPDATE SET
                   config = excluded.config,
                   version = tenants.version + 1,
                   updated_at_ms = excluded.updated_at_ms",
                &[slug.as_str().into(), json.as_str().into(), now_ms.into(), now_ms.into()],
            )?;
                Ok::<bool, RegistryError>(created)
            })
            .and_then(|created| {
                let rec = self.get(&slug)?.ok_or_else(|| RegistryError::Corrupt {
                    slug: slug.clone(),
                    reason: "vanished after write".into(),
                })?;
                Ok((rec, created))
            })
    }

    /// Sets a tenant's status; `None` when there is no such tenant.
    pub fn set_status(
        &mut self,
        slug: &str,
        status: TenantStatus,
        now_ms: i64,
    ) -> Result<Option<TenantRecord>, RegistryError> {
        self.store.exec(
            "UPDATE tenants SET status = ?, version = version + 1, updated_at_ms = ?
             WHERE slug = ? AND status <> ?",
            &[
                status.as_str().into(),
                now_ms.into(),
                slug.into(),
                status.as_str().into(),
            ],
        )?;
        self.get(slug)
    }

    /// Deletes a tenant; false when there was none.
    pub fn delete(&mut self, slug: &str) -> Result<bool, RegistryError> {
        let gone = self.store.query_opt(
            "DELETE FROM tenants WHERE slug = ? RETURNING slug",
            &[slug.into()],
        )?;
        Ok(gone.is_some())
    }

    /// Tenants in slug order, strictly after `after`, at most `limit` (clamped to 1..=100).
    pub fn list(&mut self, after: Option<&str>, limit: u32) -> Result<TenantPage, RegistryError> {
        self.page("", after, limit.clamp(1, MAX_PAGE))
    }

    /// Active tenants with a price, in slug order, strictly after `after`, at most `limit`
    /// (clamped to 1..=[`MAX_LISTING_PAGE`]): what discovery and MCP list. One query over
    /// the stored JSON, no second copy of the price to keep in step.
    pub fn paid_active(
        &mut self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<TenantPage, RegistryError> {
        self.page(
            "AND status = 'active' AND json_extract(config, '$.price') IS NOT NULL",
            after,
            limit.clamp(1, MAX_LISTING_PAGE),
        )
    }

    /// One page of tenants in slug order after `after` that match `filter` (a fixed SQL
    /// condition, never input), with the cursor of the next page if there is one.
    fn page(
        &mut self,
        filter: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<TenantPage, RegistryError> {
        let sql =
            format!("SELECT {COLUMNS} FROM tenants WHERE slug > ? {filter} ORDER BY slug LIMIT ?");
        // One extra row tells whether another page exists.
        let rows = self.store.exec(
            &sql,
            &[after.unwrap_or("").into(), SqlValue::from(limit + 1)],
        )?;
        let mut tenants = rows.iter().map(record).collect::<Result<Vec<_>, _>>()?;
        let next_cursor = if tenants.len() > limit as usize {
            tenants.truncate(limit as usize);
            tenants.last().map(|t| t.config.slug.clone())
        } else {
            None
        };
        Ok(TenantPage {
            tenants,
            next_cursor,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memsql::MemSql;
    use proptest::prelude::*;

    fn config(slug: &str, plan: &str) -> TenantConfig {
        let json =
            format!(r#"{{"resourceType":"function","workerName":"w-{slug}","plan":"{plan}"}}"#);
        TenantConfig::parse(json.as_bytes(), slug).unwrap()
    }

    #[test]
    fn put_get_replace_suspend_delete() {
        let mut db = MemSql::new();
        let mut reg = Registry::open(&mut db).unwrap();
        assert_eq!(reg.get("demo").unwrap(), None);

        let (rec, created) = reg.put(&config("demo", "free"), 1_000).unwrap();
        assert!(created);
        assert_eq!(
            (rec.version, rec.status, rec.created_at_ms),
            (1, TenantStatus::Active, 1_000)
        );

        let suspended = reg
            .set_status("demo", TenantStatus::Suspended, 2_000)
            .unwrap()
            .unwrap();
        assert_eq!(
            (suspended.version, suspended.status),
            (2, TenantStatus::Suspended)
        );
        // Setting the same status again changes nothing.
        let again = reg
            .set_status("demo", TenantStatus::Suspended, 2_500)
            .unwrap()
            .unwrap();
        assert_eq!(again.version, 2);

        let (rec, created) = reg.put(&config("demo", "pro"), 3_000).unwrap();
        assert!(!created);
        assert_eq!(rec.version, 3);
        assert_eq!(
            rec.status,
            TenantStatus::Suspended,
            "replace keeps the operator's suspension"
        );
        assert_eq!((rec.created_at_ms, rec.updated_at_ms), (1_000, 3_000));
        assert_eq!(rec.config.plan, crate::tenant::Plan::Pro);

        assert_eq!(
            reg.set_status("nope", TenantStatus::Active, 1).unwrap(),
            None
        );
        assert!(reg.delete("demo").unwrap());
        assert!(!reg.delete("demo").unwrap());
        assert_eq!(reg.get("demo").unwrap(), None);
    }

    fn paid(slug: &str) -> TenantConfig {
        let json = format!(
            r#"{{"resourceType":"function","workerName":"w-{slug}","plan":"free",
            "price":{{"amountAtomic":"1000","network":"base-sepolia",
            "asset":"0x036CbD53842c5426634e7929541eC2318f3dCF7e",
            "payTo":"0x1111111111111111111111111111111111111111"}}}}"#
        );
        TenantConfig::parse(json.as_bytes(), slug).unwrap()
    }

    #[test]
    fn the_paid_listing_holds_active_paid_tenants_only() {
        let mut db = MemSql::new();
        let mut reg = Registry::open(&mut db).unwrap();
        reg.put(&config("free-one", "free"), 1).unwrap();
        for s in ["paid-a", "paid-b", "paid-c", "paid-d"] {
            reg.put(&paid(s), 1).unwrap();
        }
        reg.set_status("paid-b", TenantStatus::Suspended, 2)
            .unwrap();
        let slugs = |p: &TenantPage| -> Vec<String> {
            p.tenants.iter().map(|t| t.config.slug.clone()).collect()
        };
        let all = reg.paid_active(None, 10).unwrap();
        assert_eq!(slugs(&all), ["paid-a", "paid-c", "paid-d"]);
        assert_eq!(all.next_cursor, None);
        let first = reg.paid_active(None, 2).unwrap();
        assert_eq!(slugs(&first), ["paid-a", "paid-c"]);
        let rest = reg.paid_active(first.next_cursor.as_deref(), 2).unwrap();
        assert_eq!(slugs(&rest), ["paid-d"]);
        // Resumed: listed again.
        reg.set_status("paid-b", TenantStatus::Active, 3).unwrap();
        assert_eq!(reg.paid_active(None, 10).unwrap().tenants.len(), 4);
    }

    proptest! {
        /// Walking the cursor visits every tenant exactly once, in order, for any page size.
        #[test]
        fn cursor_pages_cover_everything_once(
            slugs in proptest::collection::btree_set("t[a-z0-9]{1,8}", 0..40),
            page in 1u32..12,
        ) {
            let mut db = MemSql::new();
            let mut reg = Registry::open(&mut db).unwrap();
            for s in &slugs {
                reg.put(&config(s, "free"), 1).unwrap();
            }
            let mut seen = Vec::new();
            let mut after: Option<String> = None;
            loop {
                let p = reg.list(after.as_deref(), page).unwrap();
                prop_assert!(p.tenants.len() <= page as usize);
                seen.extend(p.tenants.iter().map(|t| t.config.slug.clone()));
                match p.next_cursor {
                    Some(c) => after = Some(c),
                    None => break,
                }
            }
            let expected: Vec<String> = slugs.iter().cloned().collect();
            prop_assert_eq!(seen, expected);
        }
    }
}
