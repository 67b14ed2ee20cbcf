-- accept_transactions: accepts many new transactions with a few set-based statements, where
-- accept_transaction (0001) runs about ten statements per transaction. It records exactly
-- what accept_transaction records for the same request (same columns, same request hash, gap-
-- free sequence numbers) and is only ever a faster way to the same result:
--
-- Request i is (p_scope[i], p_key[i], p_type[i], p_wallet[i], ...). It accepts the requests
-- that are plainly new and valid: a deposit, withdrawal, payment or transfer with a positive
-- amount, an ISO currency, existing wallet(s), and a key not used before (nor by an earlier
-- request of the same call). Those get one row each: (idx, transaction_id, sequence,
-- to_sequence, created_at). Every other request gets no row and nothing of it is recorded:
-- the caller runs it through accept_transaction, which answers it (a replay, TX409, TX404,
-- TX400). A request with p_wallet NULL is always left to the caller.
--
-- When a concurrent transaction takes one of the keys first (seen only at the INSERT), the
-- call records nothing and returns no row, so that no sequence number is skipped; the caller
-- then runs every request through accept_transaction.
-- Sequence numbers within one call follow the request order (idx), per wallet.
CREATE FUNCTION accept_transactions(
    p_scope text[], p_key text[], p_type text[], p_wallet bigint[], p_to bigint[], p_amount bigint[],
    p_currency text[], p_description text[], p_metadata text[], p_origin text)
RETURNS TABLE (idx int, transaction_id uuid, sequence bigint, to_sequence bigint, created_at timestamptz)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = ledger, pg_temp AS $$
#variable_conflict use_column
DECLARE
    v_new int[];          -- requests that look new and valid
    v_wallets bigint[];   -- their wallets' sequence counters, locked, in id order
    v_next bigint[];
    v_take int[];         -- the requests whose wallets all exist: the ones recorded
    r_idx int[];
    r_id uuid[];
    r_seq bigint[];
    r_to_seq bigint[];
    v_state text;
BEGIN
    SELECT array_agg(c.i ORDER BY c.i) INTO v_new FROM (
        SELECT u.i, row_number() OVER (PARTITION BY u.scope, u.key ORDER BY u.i) AS nth
          FROM unnest(p_scope, p_key, p_type, p_wallet, p_to, p_amount, p_currency) WITH ORDINALITY
               AS u(scope, key, type, wallet, to_wallet, amount, currency, i)
         WHERE u.scope <> '' AND u.key <> '' AND length(u.key) <= 255
           AND u.type IN ('deposit', 'withdrawal', 'payment', 'transfer') AND u.amount > 0
           AND u.currency ~ '^[A-Z]{3}$' AND u.wallet IS NOT NULL
           AND CASE WHEN u.type = 'transfer' THEN u.to_wallet IS NOT NULL AND u.to_wallet <> u.wallet
                    ELSE u.to_wallet IS NULL END
           AND NOT EXISTS (SELECT 1 FROM transactions t WHERE t.idempotency_scope = u.scope AND t.idempotency_key = u.key)
    ) c WHERE c.nth = 1;
    IF v_new IS NULL THEN
        RETURN;
    END IF;

    -- Lock the sequence counters in wallet id order, as accept_transaction does.
    SELECT array_agg(l.wallet_id ORDER BY l.wallet_id), array_agg(l.next_seq ORDER BY l.wallet_id) INTO v_wallets, v_next
      FROM (SELECT s.wallet_id, s.next_seq FROM wallet_sequences s
             WHERE s.wallet_id IN (SELECT p_wallet[i] FROM unnest(v_new) i UNION SELECT p_to[i] FROM unnest(v_new) i)
             ORDER BY s.wallet_id FOR UPDATE) l;
    SELECT array_agg(i ORDER BY i) INTO v_take FROM unnest(v_new) i
     WHERE p_wallet[i] = ANY (v_wallets) AND (p_to[i] IS NULL OR p_to[i] = ANY (v_wallets));
    IF v_take IS NULL THEN
        RETURN;
    END IF;

    BEGIN
        WITH touch AS (
            -- Each request's place among the requests touching the same wallet (as source or destination).
            SELECT i, x.role, x.w, row_number() OVER (PARTITION BY x.w ORDER BY i) AS nth
              FROM unnest(v_take) i CROSS JOIN LATERAL (VALUES (0, p_wallet[i]), (1, p_to[i])) AS x(role, w)
             WHERE x.w IS NOT NULL
        ), numbered AS (
            SELECT t.i, max(c.next_seq + t.nth - 1) FILTER (WHERE t.role = 0) AS seq,
                        max(c.next_seq + t.nth - 1) FILTER (WHERE t.role = 1) AS to_seq
              FROM touch t JOIN unnest(v_wallets, v_next) AS c(w, next_seq) ON c.w = t.w
             GROUP BY t.i
        ), inserted AS (
            INSERT INTO transactions AS t (id, type, wallet_id, to_wallet_id, amount, currency, sequence, to_sequence,
                                           idempotency_scope, idempotency_key, request_hash, description, metadata, origin)
            SELECT gen_random_uuid(), p_type[n.i], p_wallet[n.i], p_to[n.i], p_amount[n.i], p_currency[n.i], n.seq, n.to_seq,
                   p_scope[n.i], p_key[n.i],
                   -- The same hash as accept_transaction's (p_reverses is NULL here).
                   md5(concat_ws('|', p_type[n.i], p_wallet[n.i], p_to[n.i], p_amount[n.i], p_currency[n.i], NULL::uuid,
                                 p_description[n.i], p_metadata[n.i]::jsonb::text)),
                   p_description[n.i], p_metadata[n.i]::jsonb, coalesce(p_origin, 'api')
              FROM numbered n
            ON CONFLICT (idempotency_scope, idempotency_key) DO NOTHING
            RETURNING t.id, t.idempotency_scope, t.idempotency_key, t.sequence, t.to_sequence
        )
        SELECT array_agg(n.i), array_agg(ins.id), array_agg(ins.sequence), array_agg(ins.to_sequence)
          INTO r_idx, r_id, r_seq, r_to_seq
          FROM inserted ins JOIN numbered n ON p_scope[n.i] = ins.idempotency_scope AND p_key[n.i] = ins.idempotency_key;
        IF coalesce(array_length(r_idx, 1), 0) <> array_length(v_take, 1) THEN
            RAISE EXCEPTION 'a concurrent transaction took one of the keys' USING ERRCODE = '23505';
        END IF;
    EXCEPTION WHEN OTHERS THEN
        -- Bad data (22xxx) or a constraint (23xxx): nothing of this block is kept, and every
        -- request goes through accept_transaction, which answers it. Anything else is raised.
        GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE;
        IF v_state LIKE '22%' OR v_state LIKE '23%' THEN
            RETURN;
        END IF;
        RAISE;
    END;

    UPDATE wallet_sequences s SET next_seq = s.next_seq + c.n
      FROM (SELECT x.w, count(*) AS n
              FROM unnest(v_take) i CROSS JOIN LATERAL (VALUES (p_wallet[i]), (p_to[i])) AS x(w)
             WHERE x.w IS NOT NULL GROUP BY x.w) c
     WHERE s.wallet_id = c.w;
    RETURN QUERY SELECT r.i::int, r.id, r.seq, r.to_seq, now()
                   FROM unnest(r_idx, r_id, r_seq, r_to_seq) AS r(i, id, seq, to_seq);
END $$;

REVOKE ALL ON FUNCTION accept_transactions(text[], text[], text[], bigint[], bigint[], bigint[], text[], text[], text[], text)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION accept_transactions(text[], text[], text[], bigint[], bigint[], bigint[], text[], text[], text[], text)
    TO txp_gateway;
