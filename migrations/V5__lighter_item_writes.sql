-- Issue 16 (speed): what items cost the run's transaction. A rerun moved every item it reported again to
-- its new discrepancy and run (the bench day: 16,000 items): an UPDATE per item that checked two foreign
-- keys and rewrote every index of the row, 0.67-1.05 s in PostgreSQL's statement log; a day's first run
-- checked three foreign keys per item opened and one more per `opened` event.
--
-- An item no longer stores which discrepancy and run report it: that is the discrepancy with its key in the
-- current run of its `run_date` (the date of the run reporting it), found by `discrepancies_by_item`. A
-- rerun that reports an item as it was writes nothing to it; only what an operator sees changing (status,
-- figures, the date reporting it) is written.
DROP VIEW missing_transactions;
ALTER TABLE items DROP COLUMN discrepancy_id;
ALTER TABLE items DROP COLUMN run_id;

-- these references to runs are written only by recon's own statements, in the transaction that inserts or
-- reads the run; the rows they point at are never deleted (enforced below, which no foreign key did).
-- item_events.item_id keeps its foreign key: the audit trail names items.
ALTER TABLE items DROP CONSTRAINT items_first_run_id_fkey;
-- a run's discrepancies are copied in right after the run's row, in its transaction (16,000 foreign-key
-- checks cost the bench day's COPY 60 ms)
ALTER TABLE discrepancies DROP CONSTRAINT discrepancies_run_id_fkey;
ALTER TABLE item_events DROP CONSTRAINT item_events_run_id_fkey;

-- runs, their discrepancies and items are history: never deleted (a superseded run stays, with its rows)
CREATE FUNCTION recon_history_is_kept() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is history and is never deleted: % is refused', TG_TABLE_NAME, TG_OP
        USING HINT = 'a newer run supersedes a run; an item is resolved, not deleted';
END
$$;
CREATE TRIGGER reconciliation_runs_kept BEFORE DELETE OR TRUNCATE ON reconciliation_runs
    FOR EACH STATEMENT EXECUTE FUNCTION recon_history_is_kept();
CREATE TRIGGER discrepancies_kept BEFORE DELETE OR TRUNCATE ON discrepancies
    FOR EACH STATEMENT EXECUTE FUNCTION recon_history_is_kept();
CREATE TRIGGER items_kept BEFORE DELETE OR TRUNCATE ON items
    FOR EACH STATEMENT EXECUTE FUNCTION recon_history_is_kept();

-- missing_transactions as V4 defined it (the current open missing items, all dates): the discrepancy of each
-- is the one with its key in the current run of its date
CREATE VIEW missing_transactions AS
SELECT d.id, d.run_id, d.run_date, d.processor_name, d.category, d.severity, i.status AS lifecycle,
       COALESCE(d.processor_record_id, d.ledger_id) AS transaction_id,
       d.processor_record_id, d.ledger_id, d.processor_txn_id, d.reference,
       d.amount_at_stake AS amount, d.currency, d.occurred_at, d.details,
       i.id AS item_id, i.first_seen_date, i.assignee
FROM items i
JOIN reconciliation_runs r
  ON r.run_date = i.run_date AND r.processor_name = i.processor_name AND r.status = 'succeeded'
JOIN discrepancies d ON d.item_key = i.item_key AND d.run_date = i.run_date AND d.run_id = r.id
WHERE i.family = 'missing' AND i.status <> 'resolved';
