//! Paid answers kept for a retry of the same payment.
//!
//! A paid call's answer is buffered before it is settled; the dispatcher stores it here,
//! keyed by the payment, before it asks for the settlement. A caller whose connection broke
//! (or whose dispatcher died) after paying retries with the same payment and gets this
//! answer with its receipt, without being charged again ([`Ledger::recovery`]). The first
//! answer stored for a payment stands. An answer whose body is larger than
//! [`MAX_STORED_ANSWER_BYTES`] is kept without its body (`body_stored: false`): its retry
//! learns that it was charged and gets the receipt, not the body. Answers are kept
//! [`ANSWER_TTL_MS`] (the alarm's sweep drops older ones).

use serde::{Deserialize, Serialize};

use super::{
    check_now, check_token, Ledger, LedgerError, Payment, MAX_FINGERPRINT_LEN, MAX_KEY_LEN,
};
use crate::store::{checked_int, SqlStore, SqlValue};

/// The largest body kept (SQLite in a Durable Object holds values up to 2 MB).
pub const MAX_STORED_ANSWER_BYTES: usize = 1 << 20;
/// Headers of a kept answer, as JSON, at most.
pub const MAX_STORED_HEADERS_BYTES: usize = 16 * 1024;
/// How long an answer is kept for retries.
pub const ANSWER_TTL_MS: i64 = 24 * 60 * 60 * 1_000;

/// An answer as kept: what the dispatcher sends back to a retry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredAnswer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// The body's length as the tenant sent it.
    pub body_bytes: u64,
    /// Whether the body is kept (it fits [`MAX_STORED_ANSWER_BYTES`]).
    pub body_stored: bool,
    #[serde(skip)]
    pub body: Vec<u8>,
}

impl<S: SqlStore> Ledger<'_, S> {
    /// Keeps `answer` for the reserved payment `key` (whose `fingerprint` it must have).
    /// The first answer stands: a second one for the same payment returns `false` and
    /// changes nothing. A body over the bound is not kept (`body_stored: false`).
    pub fn store_answer(
        &mut self,
        key: &str,
        fingerprint: &str,
        answer: &StoredAnswer,
        now_ms: i64,
    ) -> Result<bool, LedgerError> {
        check_token("key", key, MAX_KEY_LEN)?;
        check_token("fingerprint", fingerprint, MAX_FINGERPRINT_LEN)?;
        check_now(now_ms)?;
        if !(100..=599).contains(&answer.status) {
            return Err(super::invalid("status", "must be an HTTP status"));
        }
        let headers = serde_json::to_string(&answer.headers)
            .map_err(|e| super::invalid("headers", e.to_string()))?;
        if headers.len() > MAX_STORED_HEADERS_BYTES {
            return Err(super::invalid("headers", "too large to keep"));
        }
        if answer.body_stored && answer.body.len() > MAX_STORED_ANSWER_BYTES {
            return Err(super::invalid("body", "larger than a kept answer may be"));
        }
        let body = if answer.body_stored {
            SqlValue::Blob(answer.body.clone())
        } else {
            SqlValue::Null
        };
        let body_bytes = checked_int(i64::try_from(answer.body_bytes).unwrap_or(i64::MAX))?;
        // One statement when it is kept: inserted only for the payment with this key and
        // fingerprint, once. Nothing inserted: say why (no such payment, another payment's
        // fingerprint, or already kept).
        let inserted = self.store.query_opt(
            "INSERT INTO ledger_answers (payment_key, status, headers, body, body_bytes,
                stored_at_ms)
             SELECT payment_key, ?, ?, ?, ?, ? FROM ledger_payments
             WHERE payment_key = ? AND fingerprint = ?
             ON CONFLICT (payment_key) DO NOTHING
             RETURNING payment_key",
            &[
                u32::from(answer.status).into(),
                headers.as_str().into(),
                body,
                body_bytes,
                checked_int(now_ms)?,
                key.into(),
                fingerprint.into(),
            ],
        )?;
        if inserted.is_some() {
            return Ok(true);
        }
        let row = self.store.query_opt(
            "SELECT fingerprint FROM ledger_payments WHERE payment_key = ?",
            &[key.into()],
        )?;
        match row {
            None => Err(LedgerError::PaymentNotFound(key.to_owned())),
            Some(r) if r.text(0)? != fingerprint => Err(LedgerError::PaymentKeyReused),
            Some(_) => Ok(false),
        }
    }

    /// The answer kept for `key`, if any.
    pub fn answer(&mut self, key: &str) -> Result<Option<StoredAnswer>, LedgerError> {
        check_token("key", key, MAX_KEY_LEN)?;
        let Some(row) = self.store.query_opt(
            "SELECT status, headers, body, body_bytes FROM ledger_answers WHERE payment_key = ?",
            &[key.into()],
        )?
        else {
            return Ok(None);
        };
        let status = u16::try_from(row.int(0)?).map_err(|_| super::corrupt("stored status"))?;
        let headers: Vec<(String, String)> = serde_json::from_str(row.text(1)?)
            .map_err(|e| super::corrupt(format!("stored headers: {e}")))?;
        let body = row.opt_blob(2)?;
        Ok(Some(StoredAnswer {
            status,
            headers,
            body_bytes: u64::try_from(row.int(3)?).unwrap_or(0),
            body_stored: body.is_some(),
            body: body.map(<[u8]>::to_vec).unwrap_or_default(),
        }))
    }

    /// A retry of payment `key`: the payment (its fingerprint must match) and its kept
    /// answer. The caller serves the answer only when the payment is settled; the state
    /// says why not otherwise.
    pub fn recovery(
        &mut self,
        key: &str,
        fingerprint: &str,
    ) -> Result<(Payment, Option<StoredAnswer>), LedgerError> {
        check_token("fingerprint", fingerprint, MAX_FINGERPRINT_LEN)?;
        let p = self
            .payment(key)?
            .ok_or_else(|| LedgerError::PaymentNotFound(key.to_owned()))?;
        if p.fingerprint != fingerprint {
            return Err(LedgerError::PaymentKeyReused);
        }
        let answer = self.answer(key)?;
        Ok((p, answer))
    }

    /// Drops answers kept longer than `ttl_ms`, at most `max`; how many.
    pub fn sweep_answers(
        &mut self,
        now_ms: i64,
        ttl_ms: i64,
        max: u32,
    ) -> Result<u64, LedgerError> {
        check_now(now_ms)?;
        let cutoff = now_ms.saturating_sub(ttl_ms);
        let gone = self.store.exec(
            "DELETE FROM ledger_answers WHERE payment_key IN (
                SELECT payment_key FROM ledger_answers WHERE stored_at_ms <= ?
                ORDER BY stored_at_ms LIMIT ?)
             RETURNING payment_key",
            &[checked_int(cutoff)?, max.into()],
        )?;
        Ok(u64::try_from(gone.len()).unwrap_or(u64::MAX))
    }
}
