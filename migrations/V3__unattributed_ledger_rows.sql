-- Ledger rows whose processor column is unknown or unreadable belong to no processor's run; they are kept
-- here (one row per source location of a day), shown in every run's report and email, and by `recon show`.
CREATE TABLE unattributed_ledger_rows (
    run_date         date        NOT NULL,
    source           text        NOT NULL,   -- object key:line
    field            text,
    reason           text        NOT NULL,
    raw_record       text        NOT NULL,
    first_run_id     uuid        NOT NULL REFERENCES reconciliation_runs (id),
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_date, source)
);
