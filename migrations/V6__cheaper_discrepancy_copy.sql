-- Issue 16 (speed): what a run's COPY of its discrepancies costs PostgreSQL. The bench day (1M rows) copies
-- 16,000 discrepancies; PostgreSQL's own timing of that COPY, replayed in a rolled-back transaction (psql
-- \copy, six alternating runs each): 367-589 ms as V1-V5 left it, ~300-330 ms with either change below.
--
-- 1. `carry` (the record a pending or open missing item is matched with later, as JSON) becomes `json`: recon
--    only ever writes it whole and reads it whole (no operator, no index looks inside it), so the parse and
--    conversion into jsonb's binary form on every insert bought nothing. (The column is rewritten once, here.)
-- 2. The two indexes that find "the same pending item resolved by a later day's run"
--    (carry::inherit_later_resolutions) hold only what that lookup can find: rows recon resolved. Every
--    missing discrepancy used to enter both at its insert (carry is set on all of them) and is now indexed
--    only once it is resolved by recon, which few of a day's rows ever are.
ALTER TABLE discrepancies ALTER COLUMN carry TYPE json USING carry::json;

DROP INDEX discrepancies_carried_processor_record;
DROP INDEX discrepancies_carried_ledger_row;
CREATE INDEX discrepancies_resolved_processor_record
    ON discrepancies (processor_name, processor_record_id)
    WHERE carry IS NOT NULL AND lifecycle = 'resolved' AND resolved_by = 'recon';
CREATE INDEX discrepancies_resolved_ledger_row
    ON discrepancies (processor_name, ledger_id)
    WHERE carry IS NOT NULL AND lifecycle = 'resolved' AND resolved_by = 'recon';
