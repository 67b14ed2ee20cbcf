-- Group acceptance: the gateway's acceptance batcher accepts many API requests in ONE
-- database transaction (one commit) with one round trip. A request that fails for its own
-- reasons (TX400, TX404, TX409, bad data, a lost race for its key) must not take its
-- neighbours with it; anything else (deadlock, lost connection, a bug) aborts the batch.
-- Runs as txp_gateway (SELECT on ledger.wallets, EXECUTE on ledger.accept_transaction).
--
-- Two ways to isolate failures (p_isolate):
--   false: the whole batch in ONE subtransaction. On the first request that fails, all of
--          the batch's work is rolled back and only that request is returned, with its
--          error; the gateway calls again without it (same transaction). The usual case.
--   true:  each request in its own subtransaction (a SAVEPOINT each). Used once a batch
--          has had several failures. Costly on a hot wallet: ledger.accept_transaction
--          locks the wallet's sequence row FOR UPDATE, and locking a row that another
--          subtransaction of the same transaction updated creates a MultiXact; every later
--          visibility check on those row versions must read its members. Measured: a hot
--          wallet's acceptance went from ~0.15 ms to ~0.8 ms once such versions piled up.

-- One request: ownership, the destination, ledger.accept_transaction. Raises on failure.
CREATE FUNCTION accept_one(
    p_user bigint, p_scope text, p_key text, p_type text, p_wallet bigint, p_to_wallet bigint, p_to_user bigint,
    p_amount bigint, p_currency text, p_description text, p_metadata text, p_idx int)
RETURNS TABLE (idx int, error_state text, error_message text, transaction_id uuid, status text, sequence bigint,
               to_sequence bigint, created boolean, reason text, wallet_id bigint, to_wallet_id bigint,
               currency text, created_at text)
-- No SET search_path (every name is qualified): it would cost a GUC save and restore per request.
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_wallet bigint;
    v_owner bigint;
    v_currency text;
    v_to bigint := p_to_wallet;
    a record;
BEGIN
    IF p_wallet IS NOT NULL THEN
        SELECT w.id, w.owner_id, w.currency::text INTO v_wallet, v_owner, v_currency FROM ledger.wallets w WHERE w.id = p_wallet;
    ELSE
        SELECT w.id, w.owner_id, w.currency::text INTO v_wallet, v_owner, v_currency
          FROM ledger.wallets w WHERE w.owner_id = p_user AND (p_currency IS NULL OR w.currency = p_currency)
         ORDER BY w.id LIMIT 1;
    END IF;
    -- Another user's wallet is "not found", never "forbidden".
    IF v_wallet IS NULL OR v_owner <> p_user THEN
        RAISE EXCEPTION 'The wallet was not found.' USING ERRCODE = 'TX404';
    END IF;
    v_currency := coalesce(p_currency, v_currency);
    IF p_to_user IS NOT NULL THEN
        SELECT w.id INTO v_to FROM ledger.wallets w
         WHERE w.owner_id = p_to_user AND w.currency = v_currency AND w.status = 'active' ORDER BY w.id LIMIT 1;
        IF v_to IS NULL THEN
            RAISE EXCEPTION 'A % wallet of that user was not found.', v_currency USING ERRCODE = 'TX404';
        END IF;
    END IF;
    SELECT * INTO a FROM ledger.accept_transaction(p_scope, p_key, p_type, v_wallet, v_to, p_amount, v_currency, NULL,
                                                   p_description, p_metadata::jsonb, 'api') t;
    RETURN QUERY SELECT p_idx, NULL::text, NULL::text, a.transaction_id, a.status, a.sequence, a.to_sequence, a.created,
                        a.reason, v_wallet, a.to_wallet_id, v_currency,
                        to_char(a.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"');
END $$;

-- Request i is (p_user[i], p_scope[i], p_key[i], ...). p_wallet NULL: the caller's own wallet
-- (lowest id, in p_currency when given); p_to_user: that user's active wallet in the currency.
-- Rows carry idx (1-based); error_state is NULL on success, else TX400 (invalid), TX404
-- (unknown or another user's wallet), TX409 (idempotency conflict), 22xxx (bad data) or 23505
-- (a concurrent first use of the key won: retry the request). p_isolate true: one row per
-- request. False: one row per request; or, when one failed, nothing of the batch was kept
-- and the LAST row is the failed request's (the rows before it are void).
CREATE FUNCTION accept_batch(
    p_user bigint[], p_scope text[], p_key text[], p_type text[], p_wallet bigint[], p_to_wallet bigint[],
    p_to_user bigint[], p_amount bigint[], p_currency text[], p_description text[], p_metadata text[],
    p_isolate boolean)
RETURNS TABLE (idx int, error_state text, error_message text, transaction_id uuid, status text, sequence bigint,
               to_sequence bigint, created boolean, reason text, wallet_id bigint, to_wallet_id bigint,
               currency text, created_at text)
LANGUAGE plpgsql SET search_path = gateway, pg_temp AS $$
#variable_conflict use_column
DECLARE
    n int := coalesce(array_length(p_user, 1), 0);
    v_current int := 0;
    v_state text;
    v_message text;
BEGIN
    IF NOT p_isolate THEN
        BEGIN
            FOR i IN 1 .. n LOOP
                v_current := i;
                RETURN QUERY SELECT * FROM gateway.accept_one(p_user[i], p_scope[i], p_key[i], p_type[i], p_wallet[i],
                    p_to_wallet[i], p_to_user[i], p_amount[i], p_currency[i], p_description[i], p_metadata[i], i);
            END LOOP;
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT;
            IF v_state IN ('TX400', 'TX404', 'TX409', '23505') OR v_state LIKE '22%' THEN
                -- RETURN QUERY rows already sent stay in the result: the caller reads only this one.
                RETURN QUERY SELECT v_current, v_state, v_message, NULL::uuid, NULL::text, NULL::bigint, NULL::bigint,
                                    NULL::boolean, NULL::text, NULL::bigint, NULL::bigint, NULL::text, NULL::text;
                RETURN;
            END IF;
            RAISE;
        END;
        RETURN;
    END IF;
    FOR i IN 1 .. n LOOP
        BEGIN
            RETURN QUERY SELECT * FROM gateway.accept_one(p_user[i], p_scope[i], p_key[i], p_type[i], p_wallet[i],
                p_to_wallet[i], p_to_user[i], p_amount[i], p_currency[i], p_description[i], p_metadata[i], i);
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT;
            IF v_state IN ('TX400', 'TX404', 'TX409', '23505') OR v_state LIKE '22%' THEN
                RETURN QUERY SELECT i, v_state, v_message, NULL::uuid, NULL::text, NULL::bigint, NULL::bigint,
                                    NULL::boolean, NULL::text, NULL::bigint, NULL::bigint, NULL::text, NULL::text;
            ELSE
                RAISE;
            END IF;
        END;
    END LOOP;
END $$;
