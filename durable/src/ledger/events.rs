//! Usage events kept with their settlement: a paid call's event is written in the same atomic
//! step that settles its payment (`Ledger::settle_with_event`), so a settled call's event
//! exists as surely as its ledger entry does. The object's alarm writes what is pending into
//! the tenant's events object ([`Ledger::pending_events`]) and forgets what that object
//! acknowledged ([`Ledger::events_sent`]); a crash in between writes an event twice, which
//! the events object stores once (by id).

use super::{corrupt, Ledger, LedgerError};
use crate::events::UsageEvent;
use crate::store::{checked_int, SqlStore};

/// Events written to the events object per request at most (it takes up to 500).
pub const EVENTS_BATCH: u32 = 100;
const _: () = assert!(EVENTS_BATCH as usize <= crate::events::MAX_BATCH);

/// An event waiting to be written: its id, tenant and JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingEvent {
    pub id: String,
    pub tenant: String,
    pub json: String,
}

/// Keeps `event` (checked as the events objects check it) in the outbox, once per id.
pub(super) fn keep<S: SqlStore>(
    s: &mut S,
    event: &UsageEvent,
    now_ms: i64,
) -> Result<(), LedgerError> {
    event
        .validate(now_ms)
        .map_err(|e| super::invalid("event", format!("{}: {}", e.field, e.reason)))?;
    let json = serde_json::to_string(event).map_err(|e| corrupt(e.to_string()))?;
    s.exec(
        // Only a repeated id is skipped (a constraint failing otherwise is an error).
        "INSERT INTO ledger_events (id, tenant, event, at_ms) VALUES (?, ?, ?, ?)
         ON CONFLICT (id) DO NOTHING",
        &[
            event.id.as_str().into(),
            event.tenant.as_str().into(),
            json.into(),
            checked_int(now_ms)?,
        ],
    )?;
    Ok(())
}

impl<S: SqlStore> Ledger<'_, S> {
    /// The oldest events still to be sent, at most `limit`.
    pub fn pending_events(&mut self, limit: u32) -> Result<Vec<PendingEvent>, LedgerError> {
        let rows = self.store.exec(
            "SELECT id, tenant, event FROM ledger_events ORDER BY at_ms, id LIMIT ?",
            &[i64::from(limit).into()],
        )?;
        rows.iter()
            .map(|r| {
                Ok(PendingEvent {
                    id: r.text(0)?.to_owned(),
                    tenant: r.text(1)?.to_owned(),
                    json: r.text(2)?.to_owned(),
                })
            })
            .collect()
    }

    /// Forgets events the events object acknowledged.
    pub fn events_sent(&mut self, ids: &[String]) -> Result<(), LedgerError> {
        self.store.atomically(&mut |s| {
            for id in ids {
                s.exec(
                    "DELETE FROM ledger_events WHERE id = ?",
                    &[id.as_str().into()],
                )?;
            }
            Ok::<(), LedgerError>(())
        })
    }
}
