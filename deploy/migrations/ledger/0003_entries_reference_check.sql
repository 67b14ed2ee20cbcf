-- The entries' references (their transaction, wallet or system account must exist) are
-- checked once per INSERT statement, set-based, instead of by three foreign keys. Each
-- foreign key is a lookup and a row lock per inserted row: 3,000 of them for a batch of 500
-- transactions, measured at about a sixth of the ledger-worker's throughput.
-- What the foreign keys also guaranteed, that a referenced row cannot be deleted or change
-- its key later, holds because wallets, transactions and system accounts are permanent:
-- deleting, truncating or re-keying them is refused below, whoever asks.
ALTER TABLE entries
    DROP CONSTRAINT entries_transaction_id_fkey,
    DROP CONSTRAINT entries_wallet_id_fkey,
    DROP CONSTRAINT entries_system_account_fkey;

CREATE FUNCTION entries_check_references() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    bad record;
BEGIN
    SELECT n.transaction_id, n.wallet_id, n.system_account INTO bad
    FROM new_entries n
    WHERE NOT EXISTS (SELECT 1 FROM ledger.transactions t WHERE t.id = n.transaction_id)
       OR (n.wallet_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM ledger.wallets w WHERE w.id = n.wallet_id))
       OR (n.system_account IS NOT NULL AND NOT EXISTS (SELECT 1 FROM ledger.system_accounts s WHERE s.code = n.system_account))
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'ledger entry refers to a missing transaction, wallet or system account (transaction %, wallet %, account %)',
            bad.transaction_id, bad.wallet_id, bad.system_account
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER entries_references AFTER INSERT ON entries REFERENCING NEW TABLE AS new_entries
    FOR EACH STATEMENT EXECUTE FUNCTION entries_check_references();

CREATE FUNCTION ledger_rows_are_permanent() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger.% rows are permanent: % refused', TG_TABLE_NAME, TG_OP USING ERRCODE = 'TX403';
END $$;
CREATE TRIGGER wallets_permanent BEFORE DELETE OR UPDATE OF id ON wallets
    FOR EACH ROW EXECUTE FUNCTION ledger_rows_are_permanent();
CREATE TRIGGER wallets_no_truncate BEFORE TRUNCATE ON wallets
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_rows_are_permanent();
CREATE TRIGGER transactions_permanent BEFORE DELETE OR UPDATE OF id ON transactions
    FOR EACH ROW EXECUTE FUNCTION ledger_rows_are_permanent();
CREATE TRIGGER transactions_no_truncate BEFORE TRUNCATE ON transactions
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_rows_are_permanent();
CREATE TRIGGER system_accounts_permanent BEFORE DELETE OR UPDATE OF code ON system_accounts
    FOR EACH ROW EXECUTE FUNCTION ledger_rows_are_permanent();
CREATE TRIGGER system_accounts_no_truncate BEFORE TRUNCATE ON system_accounts
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_rows_are_permanent();
