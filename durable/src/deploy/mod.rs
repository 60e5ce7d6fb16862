//! A tenant's deployment history, over [`SqlStore`].
//!
//! One registry object per tenant (named `deployments:{slug}`, the `TenantRegistry` class,
//! so no new class or migration) keeps the versions of the tenant's script: for each its
//! hash, size, time, Cloudflare's etag, its modules, and the exact bundle that was uploaded
//! (in chunks below the 2 MB value limit of Durable Object SQL), so a rollback uploads the
//! previous bundle again. The dispatcher drives the order (`src/deploy/api.rs`):
//!
//! 1. [`Deployments::begin`] stores a *candidate* (not in the history, not live);
//! 2. the bundle is uploaded to the dispatch namespace;
//! 3. [`Deployments::activate`] records the etag and makes it live, or
//!    [`Deployments::discard`] drops it when the upload failed: the live version is
//!    untouched either way.
//!
//! Rollback ([`Deployments::rollback_target`] then [`Deployments::set_live`]) goes one
//! version back from the live one. At most [`MAX_HISTORY`] versions are kept; the oldest
//! that is not live goes first. Version numbers never repeat.

use serde::{Deserialize, Serialize};

use crate::problem::{Code, Problem};
use crate::store::{checked_int, Row, SqlStore, SqlValue, StoreError};

#[cfg(target_arch = "wasm32")]
pub mod object;

/// Versions kept per tenant (live included).
pub const MAX_HISTORY: usize = 5;
/// Bundle bytes per stored chunk (Durable Object SQL refuses values over 2 MB).
pub const CHUNK_BYTES: usize = 1 << 20;

pub const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS deploy_versions (
        version INTEGER PRIMARY KEY,
        info TEXT NOT NULL,
        content_type TEXT NOT NULL,
        ready INTEGER NOT NULL
    )",
    "CREATE TABLE IF NOT EXISTS deploy_chunks (
        version INTEGER NOT NULL,
        idx INTEGER NOT NULL,
        bytes BLOB NOT NULL,
        PRIMARY KEY (version, idx)
    )",
    "CREATE TABLE IF NOT EXISTS deploy_state (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        live INTEGER,
        next_version INTEGER NOT NULL
    )",
];

/// One module of a version, as the creator uploaded it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleInfo {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub size: u64,
}

/// What the dispatcher knows about a version before it is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionDraft {
    /// SHA-256 (hex) of the creator's upload (see `claw_edge::deploy::Upload::hash`).
    pub hash: String,
    /// Bytes of the creator's modules.
    pub size: u64,
    pub main_module: String,
    pub modules: Vec<ModuleInfo>,
}

/// A stored version: the wire type of the deployment API and of the object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionInfo {
    pub version: u32,
    pub hash: String,
    pub size: u64,
    /// Unix seconds.
    pub created_at: i64,
    /// Cloudflare's etag of the uploaded script; empty while a candidate.
    pub etag: String,
    pub main_module: String,
    pub modules: Vec<ModuleInfo>,
    pub live: bool,
}

/// `GET .../deployment`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentState {
    pub live: Option<VersionInfo>,
    /// Newest first, live included.
    pub history: Vec<VersionInfo>,
}

/// The body of `activate` and `set_live`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Activation {
    pub etag: String,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DeployError {
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    #[error("stored version {0} is unreadable: {1}")]
    Corrupt(u32, String),
    #[error("no version {0}")]
    NoVersion(u32),
    #[error("no earlier version")]
    NoEarlier,
}

impl From<DeployError> for Problem {
    fn from(e: DeployError) -> Problem {
        match e {
            DeployError::NoVersion(v) => {
                Problem::new(Code::DeploymentNotFound).detail(format!("no version {v}"))
            }
            DeployError::NoEarlier => Problem::new(Code::RollbackUnavailable)
                .detail("the live version is the oldest one kept"),
            other => Problem::internal(other.to_string()),
        }
    }
}

pub struct Deployments<'s, S: SqlStore> {
    store: &'s mut S,
}

struct Stored {
    info: VersionInfo,
    ready: bool,
}

fn stored(row: &Row, live: Option<u32>) -> Result<Stored, DeployError> {
    let version = u32::try_from(row.int(0)?).map_err(|e| DeployError::Corrupt(0, e.to_string()))?;
    let mut info: VersionInfo = serde_json::from_str(row.text(1)?)
        .map_err(|e| DeployError::Corrupt(version, e.to_string()))?;
    info.version = version;
    info.live = live == Some(version);
    Ok(Stored {
        info,
        ready: row.int(2)? == 1,
    })
}

impl<'s, S: SqlStore> Deployments<'s, S> {
    pub fn open(store: &'s mut S) -> Result<Self, DeployError> {
        for sql in SCHEMA {
            store.exec(sql, &[])?;
        }
        store.exec(
            "INSERT INTO deploy_state (id, live, next_version) VALUES (1, NULL, 1)
             ON CONFLICT (id) DO NOTHING",
            &[],
        )?;
        Ok(Deployments { store })
    }

    fn live(&mut self) -> Result<Option<u32>, DeployError> {
        let row = self
            .store
            .query_one("SELECT live FROM deploy_state WHERE id = 1", &[])?;
        Ok(row.opt_int(0)?.and_then(|v| u32::try_from(v).ok()))
    }

    fn version(&mut self, version: u32) -> Result<Option<Stored>, DeployError> {
        let live = self.live()?;
        self.store
            .query_opt(
                "SELECT version, info, ready FROM deploy_versions WHERE version = ?",
                &[version.into()],
            )?
            .as_ref()
            .map(|r| stored(r, live))
            .transpose()
    }

    /// Stores a candidate version with its bundle; it is neither live nor in the history.
    pub fn begin(
        &mut self,
        draft: &VersionDraft,
        content_type: &str,
        bundle: &[u8],
        now_s: i64,
    ) -> Result<VersionInfo, DeployError> {
        self.store.atomically(&mut |s| {
            let next = s
                .query_one("SELECT next_version FROM deploy_state WHERE id = 1", &[])?
                .int(0)?;
            let version = u32::try_from(next).map_err(|e| DeployError::Corrupt(0, e.to_string()))?;
            let info = VersionInfo {
                version,
                hash: draft.hash.clone(),
                size: draft.size,
                created_at: now_s,
                etag: String::new(),
                main_module: draft.main_module.clone(),
                modules: draft.modules.clone(),
                live: false,
            };
            let json = serde_json::to_string(&info)
                .map_err(|e| DeployError::Corrupt(version, e.to_string()))?;
            s.exec(
                "UPDATE deploy_state SET next_version = next_version + 1 WHERE id = 1",
                &[],
            )?;
            s.exec(
                "INSERT INTO deploy_versions (version, info, content_type, ready) VALUES (?, ?, ?, 0)",
                &[version.into(), json.into(), content_type.into()],
            )?;
            for (i, chunk) in bundle.chunks(CHUNK_BYTES).enumerate() {
                s.exec(
                    "INSERT INTO deploy_chunks (version, idx, bytes) VALUES (?, ?, ?)",
                    &[
                        version.into(),
                        checked_int(i as i64)?,
                        SqlValue::Blob(chunk.to_vec()),
                    ],
                )?;
            }
            Ok(info)
        })
    }

    /// Drops a candidate whose upload failed. A version already made ready is kept.
    pub fn discard(&mut self, version: u32) -> Result<(), DeployError> {
        if let Some(v) = self.version(version)? {
            if !v.ready {
                self.remove(version)?;
            }
        }
        Ok(())
    }

    fn remove(&mut self, version: u32) -> Result<(), DeployError> {
        self.store.atomically(&mut |s| {
            s.exec(
                "DELETE FROM deploy_chunks WHERE version = ?",
                &[version.into()],
            )?;
            s.exec(
                "DELETE FROM deploy_versions WHERE version = ?",
                &[version.into()],
            )?;
            Ok::<(), DeployError>(())
        })
    }

    /// Records the uploaded version's etag and makes it live; prunes the history.
    pub fn activate(&mut self, version: u32, etag: &str) -> Result<VersionInfo, DeployError> {
        let mut v = self
            .version(version)?
            .ok_or(DeployError::NoVersion(version))?;
        v.info.etag = etag.to_owned();
        v.info.live = false;
        let json = serde_json::to_string(&v.info)
            .map_err(|e| DeployError::Corrupt(version, e.to_string()))?;
        self.store.atomically(&mut |s| {
            s.exec(
                "UPDATE deploy_versions SET info = ?, ready = 1 WHERE version = ?",
                &[json.as_str().into(), version.into()],
            )?;
            s.exec(
                "UPDATE deploy_state SET live = ? WHERE id = 1",
                &[version.into()],
            )?;
            Ok::<(), DeployError>(())
        })?;
        self.prune()?;
        self.version(version)?
            .map(|v| v.info)
            .ok_or(DeployError::NoVersion(version))
    }

    /// Makes an earlier ready version live again (after its bundle was uploaded again),
    /// with the etag Cloudflare gave the re-upload.
    pub fn set_live(&mut self, version: u32, etag: &str) -> Result<VersionInfo, DeployError> {
        match self.version(version)? {
            Some(v) if v.ready => {}
            _ => return Err(DeployError::NoVersion(version)),
        }
        self.activate(version, etag)
    }

    fn ready_versions(&mut self) -> Result<Vec<VersionInfo>, DeployError> {
        let live = self.live()?;
        let rows = self.store.exec(
            "SELECT version, info, ready FROM deploy_versions WHERE ready = 1 ORDER BY version DESC",
            &[],
        )?;
        rows.iter()
            .map(|r| stored(r, live).map(|s| s.info))
            .collect()
    }

    fn prune(&mut self) -> Result<(), DeployError> {
        let versions = self.ready_versions()?;
        if versions.len() <= MAX_HISTORY {
            return Ok(());
        }
        let mut excess = versions.len() - MAX_HISTORY;
        for v in versions.iter().rev() {
            if excess == 0 {
                break;
            }
            if !v.live {
                self.remove(v.version)?;
                excess -= 1;
            }
        }
        Ok(())
    }

    pub fn state(&mut self) -> Result<DeploymentState, DeployError> {
        let history = self.ready_versions()?;
        let live = history.iter().find(|v| v.live).cloned();
        Ok(DeploymentState { live, history })
    }

    /// The version a rollback makes live: the newest kept version older than the live one.
    pub fn rollback_target(&mut self) -> Result<VersionInfo, DeployError> {
        let live = self.live()?.ok_or(DeployError::NoEarlier)?;
        self.ready_versions()?
            .into_iter()
            .find(|v| v.version < live)
            .ok_or(DeployError::NoEarlier)
    }

    /// A version's bundle as it was uploaded, and its content type.
    pub fn bundle(&mut self, version: u32) -> Result<(String, Vec<u8>), DeployError> {
        let row = self
            .store
            .query_opt(
                "SELECT content_type FROM deploy_versions WHERE version = ?",
                &[version.into()],
            )?
            .ok_or(DeployError::NoVersion(version))?;
        let content_type = row.text(0)?.to_owned();
        let mut bytes = Vec::new();
        for r in self.store.exec(
            "SELECT bytes FROM deploy_chunks WHERE version = ? ORDER BY idx",
            &[version.into()],
        )? {
            bytes.extend_from_slice(r.opt_blob(0)?.unwrap_or_default());
        }
        Ok((content_type, bytes))
    }

    /// Forgets everything (the tenant was deleted).
    pub fn clear(&mut self) -> Result<(), DeployError> {
        self.store.atomically(&mut |s| {
            s.exec("DELETE FROM deploy_chunks", &[])?;
            s.exec("DELETE FROM deploy_versions", &[])?;
            s.exec("UPDATE deploy_state SET live = NULL WHERE id = 1", &[])?;
            Ok::<(), DeployError>(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memsql::MemSql;
    use proptest::prelude::*;

    fn draft(tag: &str) -> VersionDraft {
        VersionDraft {
            hash: format!("hash-{tag}"),
            size: 3,
            main_module: "index.js".into(),
            modules: vec![ModuleInfo {
                name: "index.js".into(),
                kind: "application/javascript+module".into(),
                size: 3,
            }],
        }
    }

    fn deploy<S: SqlStore>(d: &mut Deployments<'_, S>, tag: &str, now: i64) -> VersionInfo {
        let v = d
            .begin(&draft(tag), "multipart/form-data", tag.as_bytes(), now)
            .unwrap();
        d.activate(v.version, &format!("etag-{tag}")).unwrap()
    }

    #[test]
    fn a_candidate_is_invisible_until_activated_and_discard_keeps_the_live_one() {
        let mut db = MemSql::new();
        let mut d = Deployments::open(&mut db).unwrap();
        assert_eq!(
            d.state().unwrap(),
            DeploymentState {
                live: None,
                history: vec![]
            }
        );
        let v1 = deploy(&mut d, "one", 10);
        assert!(v1.live);
        assert_eq!(
            (v1.version, v1.etag.as_str(), v1.created_at),
            (1, "etag-one", 10)
        );

        let c = d.begin(&draft("two"), "ct", b"two", 20).unwrap();
        assert_eq!(c.version, 2);
        let s = d.state().unwrap();
        assert_eq!(s.live.as_ref().map(|v| v.version), Some(1));
        assert_eq!(s.history.len(), 1, "a candidate is not in the history");
        d.discard(c.version).unwrap();
        assert_eq!(d.bundle(2), Err(DeployError::NoVersion(2)));
        // Numbers never repeat, even after a discarded candidate.
        assert_eq!(deploy(&mut d, "three", 30).version, 3);
    }

    #[test]
    fn rollback_goes_one_back_and_bundles_round_trip_in_chunks() {
        let mut db = MemSql::new();
        let mut d = Deployments::open(&mut db).unwrap();
        assert_eq!(d.rollback_target(), Err(DeployError::NoEarlier));
        let big: Vec<u8> = (0..(CHUNK_BYTES * 2 + 7))
            .map(|i| (i % 251) as u8)
            .collect();
        let v1 = d.begin(&draft("big"), "ct-1", &big, 1).unwrap();
        d.activate(v1.version, "e1").unwrap();
        deploy(&mut d, "two", 2);
        deploy(&mut d, "three", 3);
        assert_eq!(d.rollback_target().unwrap().version, 2);
        d.set_live(2, "e2-again").unwrap();
        let s = d.state().unwrap();
        assert_eq!(
            s.live.as_ref().map(|v| (v.version, v.etag.as_str())),
            Some((2, "e2-again"))
        );
        assert_eq!(
            s.history.iter().map(|v| v.version).collect::<Vec<_>>(),
            [3, 2, 1]
        );
        assert_eq!(d.rollback_target().unwrap().version, 1);
        d.set_live(1, "e1b").unwrap();
        assert_eq!(d.rollback_target(), Err(DeployError::NoEarlier));
        assert_eq!(d.bundle(1).unwrap(), ("ct-1".to_owned(), big));
        // A candidate cannot be made live by a rollback.
        let c = d.begin(&draft("c"), "ct", b"c", 5).unwrap();
        assert_eq!(
            d.set_live(c.version, "x"),
            Err(DeployError::NoVersion(c.version))
        );
        d.clear().unwrap();
        assert_eq!(d.state().unwrap().history, vec![]);
    }

    proptest! {
        /// Any sequence of deploys, failed uploads and rollbacks: at most MAX_HISTORY
        /// versions, exactly one live once anything was deployed, the live one never pruned,
        /// and the live version always the one the model says.
        #[test]
        fn history_is_bounded_and_live_is_exact(ops in proptest::collection::vec(0u8..3, 1..40)) {
            let mut db = MemSql::new();
            let mut d = Deployments::open(&mut db).unwrap();
            let mut model: Vec<u32> = Vec::new(); // kept ready versions, ascending
            let mut live: Option<u32> = None;
            for (i, op) in ops.iter().enumerate() {
                match op {
                    0 => {
                        let v = deploy(&mut d, &format!("v{i}"), i as i64);
                        model.push(v.version);
                        live = Some(v.version);
                        while model.len() > MAX_HISTORY {
                            let pos = model.iter().position(|m| Some(*m) != live).unwrap();
                            model.remove(pos);
                        }
                    }
                    1 => {
                        let c = d.begin(&draft("fail"), "ct", b"x", i as i64).unwrap();
                        d.discard(c.version).unwrap();
                    }
                    _ => {
                        let want = live.and_then(|l| model.iter().rev().find(|m| **m < l).copied());
                        match d.rollback_target() {
                            Ok(t) => {
                                prop_assert_eq!(Some(t.version), want);
                                d.set_live(t.version, "again").unwrap();
                                live = Some(t.version);
                            }
                            Err(e) => {
                                prop_assert_eq!(e, DeployError::NoEarlier);
                                prop_assert_eq!(want, None);
                            }
                        }
                    }
                }
                let s = d.state().unwrap();
                prop_assert!(s.history.len() <= MAX_HISTORY);
                prop_assert_eq!(s.history.iter().filter(|v| v.live).count(), usize::from(live.is_some()));
                prop_assert_eq!(s.live.map(|v| v.version), live);
                let mut kept: Vec<u32> = s.history.iter().map(|v| v.version).collect();
                kept.reverse();
                prop_assert_eq!(&kept, &model);
            }
        }
    }
}
