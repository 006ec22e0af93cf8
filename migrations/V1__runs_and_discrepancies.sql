-- Reconciliation runs: one row per (date, processor) attempt; history is kept, the current one is the
-- row whose status is not 'superseded'. Column names processor_name, missing_transaction_count and
-- total_discrepancy_amount are kept from the seed system so operators' queries keep working.
CREATE TABLE reconciliation_runs (
    id                          uuid PRIMARY KEY,
    run_date                    date NOT NULL,
    processor_name              text NOT NULL CHECK (processor_name IN ('stripe', 'paypal', 'square')),
    status                      text NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'superseded')),
    severity                    text CHECK (severity IN ('LOW', 'MEDIUM', 'HIGH', 'CRITICAL')),
    trigger                     text NOT NULL CHECK (trigger IN ('schedule', 'manual', 's3', 'cli')),
    execution_arn               text,
    idempotency_key             text NOT NULL UNIQUE,
    grace_days                  integer NOT NULL DEFAULT 1,
    processor_count             bigint NOT NULL DEFAULT 0,
    ledger_count                bigint NOT NULL DEFAULT 0,
    matched_count               bigint NOT NULL DEFAULT 0,
    clean_count                 bigint NOT NULL DEFAULT 0,
    missing_in_ledger_count     bigint NOT NULL DEFAULT 0,
    missing_in_processor_count  bigint NOT NULL DEFAULT 0,
    amount_mismatch_count       bigint NOT NULL DEFAULT 0,
    currency_mismatch_count     bigint NOT NULL DEFAULT 0,
    status_mismatch_count       bigint NOT NULL DEFAULT 0,
    duplicate_count             bigint NOT NULL DEFAULT 0,
    invalid_record_count        bigint NOT NULL DEFAULT 0,
    pending_count               bigint NOT NULL DEFAULT 0,
    carried_forward_count       bigint NOT NULL DEFAULT 0,
    -- seed name: missing_in_ledger + missing_in_processor
    missing_transaction_count   bigint NOT NULL DEFAULT 0,
    -- seed name, now exact per currency: {"USD": "1234.56", "JPY": "1200"}; never a sum across currencies.
    -- The same figures, one numeric row per currency, are in run_currency_totals.
    total_discrepancy_amount    jsonb NOT NULL DEFAULT '{}'::jsonb,
    excluded_counts             jsonb NOT NULL DEFAULT '{}'::jsonb,
    input_manifests             jsonb NOT NULL DEFAULT '[]'::jsonb,
    report_keys                 jsonb NOT NULL DEFAULT '{}'::jsonb,
    summary                     jsonb,
    error                       text,
    superseded_by               uuid REFERENCES reconciliation_runs (id),
    started_at                  timestamptz NOT NULL,
    finished_at                 timestamptz,
    created_at                  timestamptz NOT NULL DEFAULT now()
);

-- At most one current run per date and processor.
CREATE UNIQUE INDEX reconciliation_runs_current
    ON reconciliation_runs (run_date, processor_name) WHERE status <> 'superseded';
CREATE INDEX reconciliation_runs_by_processor ON reconciliation_runs (processor_name, run_date DESC);

CREATE TABLE run_currency_totals (
    run_id                      uuid NOT NULL REFERENCES reconciliation_runs (id),
    currency                    text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    total_discrepancy_amount    numeric NOT NULL,
    PRIMARY KEY (run_id, currency)
);

CREATE TABLE discrepancies (
    id                  bigserial PRIMARY KEY,
    run_id              uuid NOT NULL REFERENCES reconciliation_runs (id),
    run_date            date NOT NULL,
    processor_name      text NOT NULL,
    category            text NOT NULL CHECK (category IN ('missing_in_ledger', 'missing_in_processor',
                            'currency_mismatch', 'amount_mismatch', 'status_mismatch', 'duplicate', 'invalid_record')),
    severity            text CHECK (severity IN ('LOW', 'MEDIUM', 'HIGH', 'CRITICAL')),
    processor_record_id text,
    ledger_id           text,
    processor_txn_id    text,
    reference           text,
    kind                text,
    processor_amount    numeric,
    processor_currency  text,
    ledger_amount       numeric,
    ledger_currency     text,
    amount_at_stake     numeric NOT NULL,
    currency            text,
    occurred_at         timestamptz,
    processor_source    text,
    ledger_source       text,
    details             text NOT NULL,
    raw_record          text,
    lifecycle           text NOT NULL CHECK (lifecycle IN ('open', 'pending', 'resolved', 'acknowledged')),
    first_seen_date     date NOT NULL,
    carried_from        bigint REFERENCES discrepancies (id),
    carry               jsonb,
    resolution          text,
    resolved_by         text,
    resolved_at         timestamptz,
    resolution_note     text,
    resolved_in_run     uuid REFERENCES reconciliation_runs (id),
    created_at          timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX discrepancies_by_run ON discrepancies (run_id, category);
CREATE INDEX discrepancies_pending ON discrepancies (processor_name, run_date) WHERE lifecycle = 'pending';
CREATE INDEX discrepancies_resolved_in ON discrepancies (resolved_in_run) WHERE resolved_in_run IS NOT NULL;

-- The seed's missing_transactions, as a view over the missing categories.
CREATE VIEW missing_transactions AS
SELECT d.id, d.run_id, d.run_date, d.processor_name, d.category, d.severity, d.lifecycle,
       COALESCE(d.processor_record_id, d.ledger_id) AS transaction_id,
       d.processor_record_id, d.ledger_id, d.processor_txn_id, d.reference,
       d.amount_at_stake AS amount, d.currency, d.occurred_at, d.details
FROM discrepancies d
WHERE d.category IN ('missing_in_ledger', 'missing_in_processor');
