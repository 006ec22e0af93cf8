-- A pending item's identity is processor + side + record id: looked up when a rerun of an older day
-- re-derives an item a later day already resolved.
CREATE INDEX discrepancies_carried_processor_record
    ON discrepancies (processor_name, processor_record_id) WHERE carry IS NOT NULL;
CREATE INDEX discrepancies_carried_ledger_row
    ON discrepancies (processor_name, ledger_id) WHERE carry IS NOT NULL;

-- missing_transactions shows the missing items of current runs only (a superseded run's rows are history).
CREATE OR REPLACE VIEW missing_transactions AS
SELECT d.id, d.run_id, d.run_date, d.processor_name, d.category, d.severity, d.lifecycle,
       COALESCE(d.processor_record_id, d.ledger_id) AS transaction_id,
       d.processor_record_id, d.ledger_id, d.processor_txn_id, d.reference,
       d.amount_at_stake AS amount, d.currency, d.occurred_at, d.details
FROM discrepancies d
JOIN reconciliation_runs r ON r.id = d.run_id
WHERE d.category IN ('missing_in_ledger', 'missing_in_processor')
  AND r.status <> 'superseded';
