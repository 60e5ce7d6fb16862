-- The ledger schema as first released (v1): kept to test the migration to the current one.
CREATE TABLE IF NOT EXISTS ledger_entries (
        seq INTEGER PRIMARY KEY CHECK (seq > 0),
        at_ms INTEGER NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('payment_reserved', 'payment_settled',
            'payment_voided', 'payout_created', 'payout_posted', 'payout_voided')),
        payment_key TEXT,
        payout_id TEXT,
        amount TEXT NOT NULL,
        fee TEXT,
        net TEXT,
        fee_bps INTEGER,
        tx_ref TEXT,
        network TEXT,
        payer TEXT,
        local_settlement INTEGER,
        destination TEXT,
        reason TEXT,
        CHECK ((payment_key IS NULL) <> (payout_id IS NULL))
    );
CREATE TABLE IF NOT EXISTS ledger_payments (
        payment_key TEXT PRIMARY KEY,
        fingerprint TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('reserved', 'settled', 'voided')),
        gross TEXT NOT NULL,
        fee TEXT,
        net TEXT,
        fee_bps INTEGER,
        tx_ref TEXT,
        network TEXT,
        payer TEXT,
        local_settlement INTEGER,
        void_reason TEXT,
        reserved_at_ms INTEGER NOT NULL,
        updated_at_ms INTEGER NOT NULL,
        reserved_seq INTEGER NOT NULL,
        last_seq INTEGER NOT NULL
    );
CREATE INDEX IF NOT EXISTS ledger_payments_reserved ON ledger_payments (reserved_at_ms)
        WHERE state = 'reserved';
CREATE TABLE IF NOT EXISTS ledger_payouts (
        payout_id TEXT PRIMARY KEY,
        idempotency_key TEXT NOT NULL UNIQUE,
        fingerprint TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('pending', 'posted', 'voided')),
        amount TEXT NOT NULL,
        destination TEXT NOT NULL,
        tx_ref TEXT,
        void_reason TEXT,
        created_at_ms INTEGER NOT NULL,
        updated_at_ms INTEGER NOT NULL,
        created_seq INTEGER NOT NULL,
        last_seq INTEGER NOT NULL
    );
CREATE TABLE IF NOT EXISTS ledger_balances (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        last_seq INTEGER NOT NULL,
        reserved_gross TEXT NOT NULL,
        reserved_count INTEGER NOT NULL,
        settled_gross TEXT NOT NULL,
        settled_fee TEXT NOT NULL,
        settled_net TEXT NOT NULL,
        settled_count INTEGER NOT NULL,
        local_net TEXT NOT NULL,
        local_count INTEGER NOT NULL,
        voided_count INTEGER NOT NULL,
        payouts_pending TEXT NOT NULL,
        payouts_pending_count INTEGER NOT NULL,
        payouts_posted TEXT NOT NULL,
        payouts_posted_count INTEGER NOT NULL,
        payouts_voided_count INTEGER NOT NULL
    );
INSERT OR IGNORE INTO ledger_balances VALUES
        (1, 0, '0', 0, '0', '0', '0', 0, '0', 0, 0, '0', 0, '0', 0, 0);
CREATE TABLE IF NOT EXISTS ledger_days (
        day INTEGER PRIMARY KEY,
        gross TEXT NOT NULL,
        fee TEXT NOT NULL,
        net TEXT NOT NULL,
        count INTEGER NOT NULL
    );
CREATE INDEX IF NOT EXISTS ledger_payments_tx ON ledger_payments (tx_ref)
        WHERE tx_ref IS NOT NULL;
