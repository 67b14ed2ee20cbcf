-- Recovery from the database: the database is the truth and a message only a hint. Two
-- things a lost message (a purged queue, a lost broker disk, a crash between commit and
-- publish) used to leave behind for good are found from here and finished by the recovery
-- loop of one ledger-worker replica (services/ledger-worker/src/recovery.cpp):
--
-- 1. Outcomes never announced. Every DB transaction that makes transactions final writes one
--    row here listing them (one row per batch, not per transaction); the worker deletes it
--    once the broker confirmed the batch's announcements. A row older than the recovery
--    threshold is an announcement lost (a worker killed between its commit and the confirms):
--    the recovery loop announces its outcomes again, with their usual event ids, so that
--    consumers deduplicate as they always did. A queue table: rows live for milliseconds.
CREATE TABLE unannounced (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- In the order the batch applied them (the order they are announced in).
    transaction_ids uuid[] NOT NULL CHECK (cardinality(transaction_ids) > 0),
    replica         text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE unannounced SET (autovacuum_vacuum_threshold = 1000, autovacuum_vacuum_scale_factor = 0,
                             autovacuum_vacuum_cost_delay = 0);

-- 2. Transactions still queued whose message is gone. Transaction ids are time-ordered
--    (uuid_v7, 0007), so the transactions accepted since the last look are a range of the
--    primary key: the loop reads that range from `scanned_to` (every transaction with a
--    smaller id is final) up to the ids of `threshold` ago, and moves `scanned_to` up to the
--    first transaction still queued. Each look reads only what was accepted since the last
--    one; no index on status is needed (one would cost every acceptance an index entry and
--    every apply its HOT update). One row, kept by whichever replica leads recovery.
CREATE TABLE recovery_state (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    scanned_to uuid NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO recovery_state (scanned_to) VALUES ('00000000-0000-0000-0000-000000000000');

-- The smallest version 7 UUID of a moment: its milliseconds, then zeros.
CREATE FUNCTION uuid_v7_floor(p_at timestamptz) RETURNS uuid LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT encode(substring(int8send(floor(extract(epoch FROM p_at) * 1000)::bigint) FROM 3)
                  || '\x00000000000000000000'::bytea, 'hex')::uuid
$$;

-- accept_transaction makes time-ordered ids for the transactions it records (the gateway's
-- per-request path, Plaid mirrors) instead of random ones, so that the scan above sees every
-- transaction. Its body (0001) stays as it is, under another name that only this wrapper
-- calls. A random (v4) id sorts anywhere in the key range: a transaction accepted with one
-- before this migration and left queued is not found by the scan (`ledger-worker recover`
-- finishes it; reconcile lists it).
ALTER FUNCTION accept_transaction(text, text, text, bigint, bigint, bigint, text, uuid, text, jsonb, text, uuid)
    RENAME TO accept_transaction_with_id;
REVOKE ALL ON FUNCTION accept_transaction_with_id(text, text, text, bigint, bigint, bigint, text, uuid, text, jsonb, text, uuid)
    FROM PUBLIC, txp_gateway, txp_plaid;

CREATE FUNCTION accept_transaction(
    p_scope text, p_key text, p_type text, p_wallet_id bigint, p_to_wallet_id bigint,
    p_amount bigint, p_currency text, p_reverses uuid DEFAULT NULL,
    p_description text DEFAULT NULL, p_metadata jsonb DEFAULT NULL, p_origin text DEFAULT 'api',
    p_id uuid DEFAULT NULL)
RETURNS TABLE (transaction_id uuid, status text, sequence bigint, to_sequence bigint, created boolean,
               reason text, wallet_id bigint, to_wallet_id bigint, amount bigint, currency text,
               created_at timestamptz)
LANGUAGE sql SECURITY DEFINER SET search_path = ledger, pg_temp AS $$
    SELECT * FROM accept_transaction_with_id(p_scope, p_key, p_type, p_wallet_id, p_to_wallet_id, p_amount, p_currency,
                                             p_reverses, p_description, p_metadata, p_origin, coalesce(p_id, uuid_v7()))
$$;
REVOKE ALL ON FUNCTION accept_transaction(text, text, text, bigint, bigint, bigint, text, uuid, text, jsonb, text, uuid)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION accept_transaction(text, text, text, bigint, bigint, bigint, text, uuid, text, jsonb, text, uuid)
    TO txp_gateway, txp_plaid;
