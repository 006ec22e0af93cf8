-- Items (issue 15): a discrepancy as operators work it, living across runs and days. An item's identity is
-- its key (processor, category family, the records' identities: recon_core::item::item_key); every
-- discrepancy a current run reports outside its grace period names its item by that key. Operators act on
-- items (acknowledge, assign, comment, resolve, reopen); every change is an event, written in the same
-- transaction as the new state, never updated or deleted.

ALTER TABLE discrepancies ADD COLUMN item_key text;
CREATE INDEX discrepancies_by_item ON discrepancies (item_key, run_date DESC) WHERE item_key IS NOT NULL;
-- open missing items are match candidates for their lookback days
CREATE INDEX discrepancies_open_missing ON discrepancies (processor_name, first_seen_date)
    WHERE lifecycle = 'open' AND carry IS NOT NULL;

CREATE TABLE items (
    id                   bigserial PRIMARY KEY,
    item_key             text NOT NULL UNIQUE,
    processor_name       text NOT NULL CHECK (processor_name IN ('stripe', 'paypal', 'square')),
    family               text NOT NULL CHECK (family IN ('missing', 'mismatch', 'duplicate', 'invalid')),
    -- what the run reporting it now says
    category             text NOT NULL,
    severity             text CHECK (severity IN ('LOW', 'MEDIUM', 'HIGH', 'CRITICAL')),
    processor_record_id  text,
    ledger_id            text,
    reference            text,
    amount_at_stake      numeric NOT NULL,
    currency             text,
    details              text NOT NULL,
    discrepancy_id       bigint NOT NULL REFERENCES discrepancies (id),
    run_id               uuid NOT NULL REFERENCES reconciliation_runs (id),
    run_date             date NOT NULL,
    -- the data date it was first seen (its pending days included) and the first run that reported it
    first_seen_date      date NOT NULL,
    first_run_id         uuid NOT NULL REFERENCES reconciliation_runs (id),
    first_run_date       date NOT NULL,
    -- the highest severity its age has reached (escalation rules), if any
    escalation           text CHECK (escalation IN ('LOW', 'MEDIUM', 'HIGH', 'CRITICAL')),
    status               text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'acknowledged', 'resolved')),
    assignee             text,
    resolution           text CHECK (resolution IN ('booked_in_ledger', 'processor_corrected', 'timing',
                             'written_off', 'refunded', 'duplicate_reversed', 'not_an_issue', 'other',
                             'not_found_on_rerun', 'matched_later')),
    resolution_note      text,
    resolved_by          text,
    resolved_at          timestamptz,
    resolved_in_run      uuid REFERENCES reconciliation_runs (id),
    version              integer NOT NULL DEFAULT 1,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    CHECK ((status = 'resolved') = (resolution IS NOT NULL))
);

-- the queries of `recon items` at a year of history (about 10 M items): open items by processor and age,
-- by status and category, by assignee; resolved since a time
CREATE INDEX items_open_by_age ON items (processor_name, first_seen_date, id) WHERE status <> 'resolved';
CREATE INDEX items_by_status ON items (status, processor_name, category, id);
CREATE INDEX items_by_assignee ON items (assignee, status) WHERE assignee IS NOT NULL;
CREATE INDEX items_resolved_at ON items (processor_name, resolved_at, id) WHERE status = 'resolved';
CREATE INDEX items_resolved_recent ON items (resolved_at DESC, id DESC) WHERE status = 'resolved';
CREATE INDEX items_by_run ON items (run_id);
-- resolved since the last run: resolved_at after a time, or resolved by this run (a BitmapOr of the two)
CREATE INDEX items_resolved_in_run ON items (resolved_in_run) WHERE resolved_in_run IS NOT NULL;

-- a later day's run that linked an open missing item's record: the item is resolved matched_later while that
-- run is current (a superseded run's matches no longer count)
CREATE TABLE item_matches (
    item_id  bigint NOT NULL REFERENCES items (id),
    run_id   uuid NOT NULL REFERENCES reconciliation_runs (id),
    PRIMARY KEY (item_id, run_id)
);
CREATE INDEX item_matches_by_run ON item_matches (run_id);

CREATE TABLE item_events (
    id           bigserial PRIMARY KEY,
    item_id      bigint NOT NULL REFERENCES items (id),
    at           timestamptz NOT NULL DEFAULT clock_timestamp(),
    actor        text NOT NULL CHECK (btrim(actor) <> ''),
    action       text NOT NULL CHECK (action IN ('opened', 'acknowledge', 'assign', 'comment', 'resolve',
                     'reopen', 'matched_later', 'not_found_on_rerun', 'found_again', 'escalated')),
    from_status  text,
    to_status    text NOT NULL,
    reason       text,
    note         text,
    assignee     text,
    run_id       uuid REFERENCES reconciliation_runs (id)
);
CREATE INDEX item_events_by_item ON item_events (item_id, id);

-- the audit trail is append-only, enforced here and not only by the code
CREATE FUNCTION item_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'item_events is append-only: % is refused', TG_OP
        USING HINT = 'an item''s history is never changed; act on the item instead (recon items ...)';
END
$$;
CREATE TRIGGER item_events_no_update BEFORE UPDATE OR DELETE ON item_events
    FOR EACH ROW EXECUTE FUNCTION item_events_append_only();
CREATE TRIGGER item_events_no_truncate BEFORE TRUNCATE ON item_events
    FOR EACH STATEMENT EXECUTE FUNCTION item_events_append_only();

-- missing_transactions keeps the seed's columns and now shows the current open missing items (all dates),
-- `lifecycle` being the item's status; item id, first seen date and assignee follow
CREATE OR REPLACE VIEW missing_transactions AS
SELECT d.id, d.run_id, d.run_date, d.processor_name, d.category, d.severity, i.status AS lifecycle,
       COALESCE(d.processor_record_id, d.ledger_id) AS transaction_id,
       d.processor_record_id, d.ledger_id, d.processor_txn_id, d.reference,
       d.amount_at_stake AS amount, d.currency, d.occurred_at, d.details,
       i.id AS item_id, i.first_seen_date, i.assignee
FROM items i
JOIN discrepancies d ON d.id = i.discrepancy_id
WHERE i.family = 'missing' AND i.status <> 'resolved';
