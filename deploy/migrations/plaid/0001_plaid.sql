-- plaid-sync's schema: linked items (access tokens sealed with AES-256-GCM), accounts with
-- balances, bank transactions, the ledger transactions that mirror them, the outbox, and
-- the functions the gateway calls (it may only SELECT here and EXECUTE these).
-- Runs as txp_plaid, the owner of schema plaid. Money is bigint minor units throughout.

CREATE TABLE items (
    item_id                    text PRIMARY KEY,
    owner_id                   bigint NOT NULL,
    institution_id             text,
    institution_name           text,
    access_token_enc           bytea NOT NULL,
    status                     text NOT NULL DEFAULT 'active' CHECK (status IN
                                   ('active', 'login_required', 'pending_expiration', 'pending_disconnect', 'revoked', 'error')),
    error_code                 text,
    cursor                     text NOT NULL DEFAULT '',
    -- Set by a sync job that found the item busy; the running sync then syncs once more.
    sync_requested             boolean NOT NULL DEFAULT false,
    transactions_update_status text,
    last_sync_at               timestamptz,
    last_sync_status           text,
    webhook                    text,
    created_at                 timestamptz NOT NULL DEFAULT now(),
    updated_at                 timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX items_owner ON items (owner_id);

CREATE TABLE accounts (
    account_id               text PRIMARY KEY,
    item_id                  text NOT NULL REFERENCES items (item_id) ON DELETE CASCADE,
    name                     text NOT NULL,
    official_name            text,
    mask                     text,
    type                     text NOT NULL,
    subtype                  text,
    available                bigint,
    current                  bigint,
    credit_limit             bigint,
    iso_currency_code        text,
    unofficial_currency_code text,
    balances_updated_at      timestamptz,
    -- The ledger wallet this account's posted transactions are mirrored into.
    wallet_id                bigint,
    created_at               timestamptz NOT NULL DEFAULT now(),
    updated_at               timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX accounts_item ON accounts (item_id);

CREATE TABLE transactions (
    transaction_id           text PRIMARY KEY,
    account_id               text NOT NULL REFERENCES accounts (account_id) ON DELETE CASCADE,
    item_id                  text NOT NULL REFERENCES items (item_id) ON DELETE CASCADE,
    -- Plaid's sign: positive = money out of the account. NULL when the text does not fit
    -- the currency's minor unit (amount_text keeps what Plaid sent).
    amount                   bigint,
    amount_text              text NOT NULL,
    iso_currency_code        text,
    unofficial_currency_code text,
    date                     date NOT NULL,
    authorized_date          date,
    name                     text NOT NULL,
    merchant_name            text,
    pending                  boolean NOT NULL,
    pending_transaction_id   text,
    payment_channel          text,
    category_primary         text,
    category_detailed        text,
    created_at               timestamptz NOT NULL DEFAULT now(),
    updated_at               timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX transactions_account_date ON transactions (account_id, date DESC, transaction_id);
CREATE INDEX transactions_item ON transactions (item_id);

-- Ledger transactions mirroring posted bank transactions, one row per version: a bank
-- correction reverses the active version and (for a changed amount) accepts a new one.
-- Kept when an item is removed: it is the audit trail of money that moved.
CREATE TABLE mirrors (
    plaid_transaction_id    text NOT NULL,
    version                 int NOT NULL CHECK (version >= 1),
    item_id                 text NOT NULL,
    wallet_id               bigint NOT NULL,
    ledger_transaction_id   uuid NOT NULL,
    type                    text NOT NULL CHECK (type IN ('deposit', 'payment')),
    amount                  bigint NOT NULL CHECK (amount > 0),
    currency                text NOT NULL,
    reversal_transaction_id uuid,
    created_at              timestamptz NOT NULL DEFAULT now(),
    reversed_at             timestamptz,
    PRIMARY KEY (plaid_transaction_id, version)
);
CREATE UNIQUE INDEX mirrors_active ON mirrors (plaid_transaction_id) WHERE reversal_transaction_id IS NULL;

CREATE TABLE outbox (
    id             bigserial PRIMARY KEY,
    message_id     uuid NOT NULL UNIQUE,
    exchange       text NOT NULL,
    routing_key    text NOT NULL,
    body           text NOT NULL,
    type           text NOT NULL,
    correlation_id text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    sent_at        timestamptz
);
CREATE INDEX outbox_pending ON outbox (id) WHERE sent_at IS NULL;

-- The scheduler's last run, so that one replica per interval enqueues the periodic syncs.
CREATE TABLE scheduler_state (
    name        text PRIMARY KEY,
    last_run_at timestamptz NOT NULL
);

-- ---- functions the gateway calls ----------------------------------------------------------

-- Saves a freshly linked item and its accounts (p_accounts: an array of objects with
-- account_id, name, official_name, mask, type, subtype, available, current, limit (minor
-- units or null), iso_currency_code, unofficial_currency_code). Re-linking an item replaces
-- its token and makes it active again.
CREATE FUNCTION save_linked_item(p_item_id text, p_owner_id bigint, p_institution_id text, p_institution_name text,
                                 p_access_token_enc bytea, p_webhook text, p_accounts jsonb)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path = plaid, pg_temp AS $$
BEGIN
    INSERT INTO items (item_id, owner_id, institution_id, institution_name, access_token_enc, webhook)
    VALUES (p_item_id, p_owner_id, p_institution_id, p_institution_name, p_access_token_enc, p_webhook)
    ON CONFLICT (item_id) DO UPDATE SET access_token_enc = EXCLUDED.access_token_enc, status = 'active',
        error_code = NULL, institution_id = EXCLUDED.institution_id, institution_name = EXCLUDED.institution_name,
        webhook = EXCLUDED.webhook, updated_at = now()
    WHERE items.owner_id = EXCLUDED.owner_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'item % belongs to another owner', p_item_id USING ERRCODE = 'TX409';
    END IF;
    PERFORM upsert_accounts(p_item_id, p_accounts);
END $$;

CREATE FUNCTION upsert_accounts(p_item_id text, p_accounts jsonb)
RETURNS void LANGUAGE sql SECURITY DEFINER SET search_path = plaid, pg_temp AS $$
    INSERT INTO accounts AS a (account_id, item_id, name, official_name, mask, type, subtype, available, current,
                               credit_limit, iso_currency_code, unofficial_currency_code, balances_updated_at)
    SELECT x->>'account_id', p_item_id, x->>'name', x->>'official_name', x->>'mask', x->>'type', x->>'subtype',
           (x->>'available')::bigint, (x->>'current')::bigint, (x->>'limit')::bigint, x->>'iso_currency_code',
           x->>'unofficial_currency_code', now()
      FROM jsonb_array_elements(p_accounts) x
    ON CONFLICT (account_id) DO UPDATE SET name = EXCLUDED.name, official_name = EXCLUDED.official_name,
        mask = EXCLUDED.mask, type = EXCLUDED.type, subtype = EXCLUDED.subtype, available = EXCLUDED.available,
        current = EXCLUDED.current, credit_limit = EXCLUDED.credit_limit, iso_currency_code = EXCLUDED.iso_currency_code,
        unofficial_currency_code = EXCLUDED.unofficial_currency_code, balances_updated_at = now(), updated_at = now()
    WHERE a.item_id = p_item_id;
$$;

-- Links a bank account to a wallet of the same owner and currency (NULL unlinks). Errors:
-- TX404 no such account for this owner, TX400 unknown wallet, other owner or currency.
CREATE FUNCTION link_account_to_wallet(p_account_id text, p_owner_id bigint, p_wallet_id bigint)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path = plaid, pg_temp AS $$
DECLARE
    v_currency text;
    v_wallet record;
BEGIN
    SELECT a.iso_currency_code INTO v_currency FROM accounts a JOIN items i USING (item_id)
     WHERE a.account_id = p_account_id AND i.owner_id = p_owner_id FOR UPDATE OF a;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no account % for this owner', p_account_id USING ERRCODE = 'TX404';
    END IF;
    IF p_wallet_id IS NOT NULL THEN
        SELECT w.owner_id, w.currency::text AS currency, w.status INTO v_wallet FROM ledger.wallets w WHERE w.id = p_wallet_id;
        IF NOT FOUND OR v_wallet.owner_id <> p_owner_id OR v_wallet.status <> 'active' THEN
            RAISE EXCEPTION 'wallet % is not an active wallet of this owner', p_wallet_id USING ERRCODE = 'TX400';
        END IF;
        IF v_currency IS DISTINCT FROM v_wallet.currency THEN
            RAISE EXCEPTION 'the account''s currency % differs from the wallet''s %', v_currency, v_wallet.currency
                USING ERRCODE = 'TX400';
        END IF;
    END IF;
    UPDATE accounts SET wallet_id = p_wallet_id, updated_at = now() WHERE account_id = p_account_id;
END $$;

-- Moves an item to a status; returns its owner and the status it had (no row: unknown item).
CREATE FUNCTION set_item_status(p_item_id text, p_status text, p_error_code text)
RETURNS TABLE (owner_id bigint, previous_status text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = plaid, pg_temp AS $$
#variable_conflict use_column
DECLARE
    v_owner bigint;
    v_prev text;
BEGIN
    SELECT i.owner_id, i.status INTO v_owner, v_prev FROM items i WHERE i.item_id = p_item_id FOR UPDATE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    UPDATE items SET status = p_status, error_code = p_error_code, updated_at = now() WHERE item_id = p_item_id;
    RETURN QUERY SELECT v_owner, v_prev;
END $$;

-- Forgets an item locally (after it was removed at Plaid); its mirrors stay.
CREATE FUNCTION remove_item(p_item_id text, p_owner_id bigint)
RETURNS boolean LANGUAGE plpgsql SECURITY DEFINER SET search_path = plaid, pg_temp AS $$
BEGIN
    DELETE FROM items WHERE item_id = p_item_id AND owner_id = p_owner_id;
    RETURN FOUND;
END $$;

CREATE FUNCTION update_balances(p_item_id text, p_accounts jsonb)
RETURNS void LANGUAGE sql SECURITY DEFINER SET search_path = plaid, pg_temp AS $$
    SELECT upsert_accounts(p_item_id, p_accounts);
$$;

REVOKE ALL ON FUNCTION save_linked_item(text, bigint, text, text, bytea, text, jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION upsert_accounts(text, jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION link_account_to_wallet(text, bigint, bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION set_item_status(text, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION remove_item(text, bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION update_balances(text, jsonb) FROM PUBLIC;

GRANT USAGE ON SCHEMA plaid TO txp_gateway;
GRANT SELECT ON items, accounts, transactions, mirrors TO txp_gateway;
GRANT EXECUTE ON FUNCTION save_linked_item(text, bigint, text, text, bytea, text, jsonb), link_account_to_wallet(text, bigint, bigint),
    set_item_status(text, text, text), remove_item(text, bigint), update_balances(text, jsonb) TO txp_gateway;
