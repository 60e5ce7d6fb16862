//! Creator keys: bearer keys an operator issues to a creator, scoped to some tenants.
//!
//! A key is `claw_ck_<id hex>_<secret hex>`: 8 random bytes name it (`id` = `ck_<id hex>`,
//! the primary key), 32 more are its secret. The registry stores only the key's SHA-256
//! ([`key_hash`]), its display prefix (`claw_ck_` and the first 8 hex digits of the id), its
//! scope (tenant slugs, which need not exist yet), a label, and its times (unix seconds):
//! created, expires (optional), revoked. The plaintext exists once, in the create answer.
//!
//! Authentication ([`Keys::authenticate`]) finds the row by the id parsed from the key and
//! compares the stored hash with the presented key's hash in constant time; the dispatcher
//! sends only the hash, so the plaintext never reaches the object after creation. A revoked
//! or expired key never authenticates, from the moment the row says so: nothing caches a
//! verdict (the dispatcher asks the registry on every request that carries a key).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::RegistryError;
use crate::problem::{Code, Problem};
use crate::store::{Row, SqlStore, SqlValue};
use crate::tenant::validate_slug;

pub const KEYS_SCHEMA: &str = "CREATE TABLE IF NOT EXISTS creator_keys (
    id TEXT PRIMARY KEY,
    hash TEXT NOT NULL,
    prefix TEXT NOT NULL,
    tenants TEXT NOT NULL,
    label TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER,
    revoked_at INTEGER
)";

/// What every key starts with (the dispatcher tells keys from operator tokens by it).
pub const KEY_PREFIX: &str = "claw_ck_";
const ID_PREFIX: &str = "ck_";
/// Random bytes naming a key (its id).
pub const ID_BYTES: usize = 8;
/// Random bytes of a key's secret.
pub const SECRET_BYTES: usize = 32;
/// Random bytes one new key needs.
pub const RANDOM_BYTES: usize = ID_BYTES + SECRET_BYTES;
/// Hex digits of the id shown in a key's prefix.
const PREFIX_HEX: usize = 8;
/// The most tenants one key may name.
pub const MAX_KEY_TENANTS: usize = 20;
/// The longest label, in characters.
pub const MAX_LABEL_CHARS: usize = 100;
/// The largest create body read.
pub const MAX_CREATE_BODY_BYTES: usize = 8 * 1024;
pub const MAX_PAGE: u32 = 100;
pub const DEFAULT_PAGE: u32 = 50;

const _: () = assert!(PREFIX_HEX <= ID_BYTES * 2);

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

fn is_lower_hex(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The stored form of a key: SHA-256 of the whole key, lowercase hex.
pub fn key_hash(key: &str) -> String {
    hex(&Sha256::digest(key.as_bytes()))
}

/// The key's id (`ck_<16 hex>`) when `key` has a creator key's shape; `None` otherwise.
pub fn parse_key(key: &str) -> Option<String> {
    let rest = key.strip_prefix(KEY_PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    (is_lower_hex(id, ID_BYTES * 2) && is_lower_hex(secret, SECRET_BYTES * 2))
        .then(|| format!("{ID_PREFIX}{id}"))
}

/// Whether `id` has a key id's shape (`ck_<16 hex>`).
pub fn is_key_id(id: &str) -> bool {
    id.strip_prefix(ID_PREFIX)
        .is_some_and(|h| is_lower_hex(h, ID_BYTES * 2))
}

/// A key made from fresh random bytes (the caller's CSPRNG): the plaintext, and what is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewKey {
    pub id: String,
    pub key: String,
    pub prefix: String,
    pub hash: String,
}

impl NewKey {
    pub fn from_random(random: &[u8; RANDOM_BYTES]) -> NewKey {
        let (id_bytes, secret) = random.split_at(ID_BYTES);
        let id_hex = hex(id_bytes);
        let key = format!("{KEY_PREFIX}{id_hex}_{}", hex(secret));
        NewKey {
            id: format!("{ID_PREFIX}{id_hex}"),
            prefix: format!("{KEY_PREFIX}{}", &id_hex[..PREFIX_HEX]),
            hash: key_hash(&key),
            key,
        }
    }
}

/// `POST /__platform/keys`: the operator's request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateKey {
    pub tenants: Vec<String>,
    #[serde(default)]
    pub label: String,
    #[serde(default)]
    pub expires_at: Option<i64>,
}

impl CreateKey {
    /// Parses and checks a create body: 1 to [`MAX_KEY_TENANTS`] valid slugs (kept sorted,
    /// without repeats), a label of at most [`MAX_LABEL_CHARS`] printable characters, an
    /// expiry (if any) after `now_s`.
    pub fn parse(body: &[u8], now_s: i64) -> Result<CreateKey, Problem> {
        let mut req: CreateKey = serde_json::from_slice(body)
            .map_err(|e| Problem::new(Code::InvalidBody).detail(e.to_string()))?;
        req.tenants.sort();
        req.tenants.dedup();
        if req.tenants.is_empty() || req.tenants.len() > MAX_KEY_TENANTS {
            return Err(Problem::invalid_field(
                "tenants",
                format!("name 1 to {MAX_KEY_TENANTS} tenants"),
            ));
        }
        for slug in &req.tenants {
            validate_slug(slug)
                .map_err(|e| Problem::invalid_field("tenants", format!("{slug:?} {e}")))?;
        }
        if req.label.chars().count() > MAX_LABEL_CHARS || req.label.chars().any(char::is_control) {
            return Err(Problem::invalid_field(
                "label",
                format!("at most {MAX_LABEL_CHARS} characters, no control characters"),
            ));
        }
        if let Some(at) = req.expires_at {
            if at <= now_s || at > crate::store::MAX_SAFE_INTEGER {
                return Err(Problem::invalid_field(
                    "expiresAt",
                    "must be a unix time (seconds) in the future",
                ));
            }
        }
        Ok(req)
    }
}

/// A key as listed: never its secret nor its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyView {
    pub id: String,
    pub prefix: String,
    pub tenants: Vec<String>,
    pub label: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// The create answer: the only time the key itself is shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreatedKey {
    pub id: String,
    pub key: String,
    pub prefix: String,
    pub tenants: Vec<String>,
    pub label: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyPage {
    pub keys: Vec<KeyView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// `POST /keys/verify` (dispatcher to registry): the id parsed from a presented key and
/// that key's [`key_hash`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VerifyKey {
    pub id: String,
    pub hash: String,
}

/// What a valid key grants: its scope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Grant {
    pub id: String,
    pub prefix: String,
    pub tenants: Vec<String>,
    pub expires_at: Option<i64>,
}

impl Grant {
    pub fn covers(&self, slug: &str) -> bool {
        self.tenants.iter().any(|t| t == slug)
    }
}

/// `DELETE /keys/{id}`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Revoked {
    pub id: String,
    pub revoked_at: i64,
}

pub fn key_not_found(id: &str) -> Problem {
    Problem::new(Code::KeyNotFound).detail(format!("no creator key {id:?}"))
}

const COLUMNS: &str = "id, prefix, tenants, label, created_at, expires_at, revoked_at, hash";

struct Stored {
    view: KeyView,
    hash: String,
}

fn stored(row: &Row) -> Result<Stored, RegistryError> {
    let id = row.text(0)?.to_owned();
    let tenants = serde_json::from_str(row.text(2)?).map_err(|e| RegistryError::Corrupt {
        slug: id.clone(),
        reason: format!("key scope: {e}"),
    })?;
    Ok(Stored {
        view: KeyView {
            prefix: row.text(1)?.to_owned(),
            tenants,
            label: row.text(3)?.to_owned(),
            created_at: row.int(4)?,
            expires_at: row.opt_int(5)?,
            revoked_at: row.opt_int(6)?,
            id,
        },
        hash: row.text(7)?.to_owned(),
    })
}

/// The keys table, over [`SqlStore`].
pub struct Keys<'s, S: SqlStore> {
    store: &'s mut S,
}

impl<'s, S: SqlStore> Keys<'s, S> {
    pub fn open(store: &'s mut S) -> Result<Self, RegistryError> {
        store.exec(KEYS_SCHEMA, &[])?;
        Ok(Keys { store })
    }

    fn load(&mut self, id: &str) -> Result<Option<Stored>, RegistryError> {
        let sql = format!("SELECT {COLUMNS} FROM creator_keys WHERE id = ?");
        self.store
            .query_opt(&sql, &[id.into()])?
            .as_ref()
            .map(stored)
            .transpose()
    }

    /// Stores a new key made from `random`; `None` in the (2^-64) case its id is taken, so
    /// the caller draws again.
    pub fn create(
        &mut self,
        req: &CreateKey,
        random: &[u8; RANDOM_BYTES],
        now_s: i64,
    ) -> Result<Option<CreatedKey>, RegistryError> {
        let new = NewKey::from_random(random);
        let tenants = serde_json::to_string(&req.tenants).map_err(|e| RegistryError::Corrupt {
            slug: new.id.clone(),
            reason: e.to_string(),
        })?;
        let inserted = self.store.query_opt(
            "INSERT INTO creator_keys (id, hash, prefix, tenants, label, created_at, expires_at)
             VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING RETURNING id",
            &[
                new.id.as_str().into(),
                new.hash.as_str().into(),
                new.prefix.as_str().into(),
                tenants.into(),
                req.label.as_str().into(),
                now_s.into(),
                req.expires_at.into(),
            ],
        )?;
        Ok(inserted.map(|_| CreatedKey {
            id: new.id,
            key: new.key,
            prefix: new.prefix,
            tenants: req.tenants.clone(),
            label: req.label.clone(),
            created_at: now_s,
            expires_at: req.expires_at,
        }))
    }

    /// Keys in id order, strictly after `after`, at most `limit` (clamped to 1..=100).
    pub fn list(&mut self, after: Option<&str>, limit: u32) -> Result<KeyPage, RegistryError> {
        let limit = limit.clamp(1, MAX_PAGE);
        let sql = format!("SELECT {COLUMNS} FROM creator_keys WHERE id > ? ORDER BY id LIMIT ?");
        let rows = self.store.exec(
            &sql,
            &[after.unwrap_or("").into(), SqlValue::from(limit + 1)],
        )?;
        let mut keys = rows
            .iter()
            .map(|r| stored(r).map(|s| s.view))
            .collect::<Result<Vec<_>, _>>()?;
        let next_cursor = if keys.len() > limit as usize {
            keys.truncate(limit as usize);
            keys.last().map(|k| k.id.clone())
        } else {
            None
        };
        Ok(KeyPage { keys, next_cursor })
    }

    /// Revokes a key from `now_s` on; revoking it again keeps the first time. `None` when
    /// there is no such key.
    pub fn revoke(&mut self, id: &str, now_s: i64) -> Result<Option<Revoked>, RegistryError> {
        self.store.exec(
            "UPDATE creator_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
            &[now_s.into(), id.into()],
        )?;
        Ok(self.load(id)?.and_then(|s| {
            s.view.revoked_at.map(|revoked_at| Revoked {
                id: s.view.id,
                revoked_at,
            })
        }))
    }

    /// The grant of the key whose id and hash were presented, if that key exists, its
    /// hash matches (compared in constant time), it is not revoked, and it has not expired
    /// at `now_s` (a key expiring at `t` is refused from `t` on).
    pub fn authenticate(
        &mut self,
        presented: &VerifyKey,
        now_s: i64,
    ) -> Result<Option<Grant>, RegistryError> {
        let Some(s) = self.load(&presented.id)? else {
            return Ok(None);
        };
        let same: bool = s.hash.as_bytes().ct_eq(presented.hash.as_bytes()).into();
        let live = s.view.revoked_at.is_none() && s.view.expires_at.is_none_or(|at| now_s < at);
        Ok((same && live).then_some(Grant {
            id: s.view.id,
            prefix: s.view.prefix,
            tenants: s.view.tenants,
            expires_at: s.view.expires_at,
        }))
    }
}

fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Problem> {
    serde_json::from_slice(body).map_err(|e| Problem::new(Code::InvalidBody).detail(e.to_string()))
}

fn value<T: Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
}

/// The registry object's key routes (the object passes `/keys...` here):
///
/// | route | body | success |
/// |---|---|---|
/// | `POST /keys` | [`CreateKey`] | 201 [`CreatedKey`] |
/// | `GET /keys?after=&limit=` | | 200 [`KeyPage`] |
/// | `DELETE /keys/{id}` | | 200 [`Revoked`]; 404 `key_not_found` |
/// | `POST /keys/verify` | [`VerifyKey`] | 200 [`Grant`]; 401 `unauthorized` |
///
/// `random` fills a new key's bytes from the runtime's CSPRNG.
pub fn handle<S: SqlStore>(
    store: &mut S,
    method: &str,
    segments: &[&str],
    query: &[(String, String)],
    body: &[u8],
    now_s: i64,
    random: &mut dyn FnMut() -> [u8; RANDOM_BYTES],
) -> Result<(u16, serde_json::Value), Problem> {
    let mut keys = Keys::open(store)?;
    match (method, segments) {
        ("POST", ["keys"]) => {
            let req = CreateKey::parse(body, now_s)?;
            // An id already taken (chance 2^-64 per pair) draws again.
            for _ in 0..4 {
                if let Some(created) = keys.create(&req, &random(), now_s)? {
                    return Ok((201, value(&created)));
                }
            }
            Err(Problem::internal("no free key id after 4 draws"))
        }
        ("GET", ["keys"]) => {
            let mut after = None;
            let mut limit = DEFAULT_PAGE;
            for (k, v) in query {
                match k.as_str() {
                    "after" => after = Some(v.as_str()),
                    "limit" => {
                        limit = v
                            .parse()
                            .ok()
                            .filter(|l| (1..=MAX_PAGE).contains(l))
                            .ok_or_else(|| {
                                Problem::new(Code::InvalidQuery)
                                    .field("limit")
                                    .detail(format!("limit must be 1 to {MAX_PAGE}"))
                            })?
                    }
                    _ => {}
                }
            }
            Ok((200, value(&keys.list(after, limit)?)))
        }
        ("POST", ["keys", "verify"]) => {
            let presented: VerifyKey = parse_json(body)?;
            keys.authenticate(&presented, now_s)?
                .map(|g| (200, value(&g)))
                .ok_or_else(|| Problem::new(Code::Unauthorized))
        }
        ("DELETE", ["keys", id]) if is_key_id(id) => keys
            .revoke(id, now_s)?
            .map(|r| (200, value(&r)))
            .ok_or_else(|| key_not_found(id)),
        ("DELETE", ["keys", id]) => Err(key_not_found(id)),
        _ => Err(Problem::new(Code::RouteNotFound)),
    }
}

#[cfg(test)]
mod tests;
