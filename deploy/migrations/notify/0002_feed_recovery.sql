-- Where the feed's recovery from the ledger has got to (services/notifier/src/feed_recovery.cpp):
-- every ledger transaction with a smaller id is final and has its feed entry. Transaction ids
-- are time-ordered (ledger migration 0007), so the notifier reads only the transactions
-- accepted since its last look. It starts at the moment this migration runs: the feed of a
-- deployment begins when its notifier was installed.
CREATE TABLE feed_recovery_state (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    scanned_to uuid NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
-- The smallest version 7 UUID of this moment (its milliseconds, then zeros), written out here
-- because the ledger's migrations may not have run yet.
INSERT INTO feed_recovery_state (scanned_to)
VALUES (encode(substring(int8send(floor(extract(epoch FROM now()) * 1000)::bigint) FROM 3)
               || '\x00000000000000000000'::bytea, 'hex')::uuid);
