-- Statements that stay fast on tables not analyzed yet: a fresh deployment taking its first
-- burst. Measured on the first 200,000 transactions of a fresh database (ledger_bench), per
-- 500-transaction batch of the worker:
--
-- 1. transactions_queued (created_at WHERE status = 'queued') served no query, and it misled
--    the planner: the batch UPDATE ... WHERE t.id = v.id AND t.status = 'queued' became a
--    bitmap scan of every queued transaction through it plus a hash join, instead of 500
--    primary-key lookups (40 ms instead of 14 ms). Without it every acceptance also writes one
--    index entry less.
DROP INDEX transactions_queued;

-- 2. The entries' reference check (0003) was written as NOT EXISTS ... OR NOT EXISTS ..., which
--    PostgreSQL may run as hashed subplans that read the whole transactions table per batch
--    (23 ms instead of 9 ms). A LATERAL subquery with LIMIT cannot be flattened or hashed: it
--    is always one index lookup per new entry and reference, whatever the statistics say.
CREATE OR REPLACE FUNCTION entries_check_references() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    bad record;
BEGIN
    SELECT n.transaction_id, n.wallet_id, n.system_account INTO bad
      FROM new_entries n
      LEFT JOIN LATERAL (SELECT true AS found FROM ledger.transactions t WHERE t.id = n.transaction_id LIMIT 1) t ON true
      LEFT JOIN LATERAL (SELECT true AS found FROM ledger.wallets w WHERE w.id = n.wallet_id LIMIT 1) w ON true
      LEFT JOIN LATERAL (SELECT true AS found FROM ledger.system_accounts s WHERE s.code = n.system_account LIMIT 1) s ON true
     WHERE t.found IS NULL
        OR (n.wallet_id IS NOT NULL AND w.found IS NULL)
        OR (n.system_account IS NOT NULL AND s.found IS NULL)
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'ledger entry refers to a missing transaction, wallet or system account (transaction %, wallet %, account %)',
            bad.transaction_id, bad.wallet_id, bad.system_account
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END $$;
