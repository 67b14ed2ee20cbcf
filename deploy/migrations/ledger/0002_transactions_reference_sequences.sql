-- Accepting a transaction must not lock the wallet row the workers lock FOR UPDATE to apply
-- money: a foreign key to ledger.wallets takes a KEY SHARE lock on that row, and acceptances
-- (which lock several wallets in request order) and worker batches (which lock in id order)
-- then deadlock each other on hot wallets. The transactions reference the wallets' sequence
-- counters instead: one row per wallet, created with it, never deleted, and already locked
-- by accept_transaction itself, so integrity is unchanged and the wallet rows stay free.
ALTER TABLE transactions DROP CONSTRAINT transactions_wallet_id_fkey;
ALTER TABLE transactions DROP CONSTRAINT transactions_to_wallet_id_fkey;
ALTER TABLE transactions ADD CONSTRAINT transactions_wallet_id_fkey
    FOREIGN KEY (wallet_id) REFERENCES wallet_sequences (wallet_id);
ALTER TABLE transactions ADD CONSTRAINT transactions_to_wallet_id_fkey
    FOREIGN KEY (to_wallet_id) REFERENCES wallet_sequences (wallet_id);
