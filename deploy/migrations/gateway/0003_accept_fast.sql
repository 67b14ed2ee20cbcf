-- The fast path of group acceptance: resolves every request's wallets set-based (as
-- accept_one does one by one) and hands the requests to ledger.accept_transactions, which
-- records the plainly new and valid ones with a few statements for the whole group.
-- Same arguments as accept_batch (without p_isolate) and the same rows, but only for the
-- requests it accepted (error_state NULL, created true). Every other request (a replay, an
-- idempotency conflict, someone else's or an unknown wallet, invalid input, a lost race for
-- its key) gets no row and nothing of it is recorded: the batcher runs it through
-- accept_batch in the same database transaction, which answers it.
CREATE FUNCTION accept_fast(
    p_user bigint[], p_scope text[], p_key text[], p_type text[], p_wallet bigint[], p_to_wallet bigint[],
    p_to_user bigint[], p_amount bigint[], p_currency text[], p_description text[], p_metadata text[])
RETURNS TABLE (idx int, error_state text, error_message text, transaction_id uuid, status text, sequence bigint,
               to_sequence bigint, created boolean, reason text, wallet_id bigint, to_wallet_id bigint,
               currency text, created_at text)
LANGUAGE plpgsql SET search_path = gateway, pg_temp AS $$
#variable_conflict use_column
DECLARE
    v_wallet bigint[];    -- per request: its wallet, NULL when it does not resolve to the caller's own
    v_to bigint[];
    v_currency text[];
BEGIN
    SELECT array_agg(CASE WHEN w.owner_id = u.usr AND (u.to_user IS NULL OR tu.id IS NOT NULL) THEN w.id END ORDER BY u.i),
           array_agg(coalesce(tu.id, u.to_wallet) ORDER BY u.i),
           array_agg(coalesce(u.currency, w.currency) ORDER BY u.i)
      INTO v_wallet, v_to, v_currency
      FROM unnest(p_user, p_wallet, p_to_wallet, p_to_user, p_currency) WITH ORDINALITY
           AS u(usr, wallet, to_wallet, to_user, currency, i)
      -- The named wallet, or the caller's own (lowest id, in the currency when one is given).
      LEFT JOIN LATERAL (
          SELECT x.id, x.owner_id, x.currency::text AS currency FROM ledger.wallets x WHERE x.id = u.wallet
          UNION ALL
          (SELECT x.id, x.owner_id, x.currency::text FROM ledger.wallets x
            WHERE u.wallet IS NULL AND x.owner_id = u.usr AND (u.currency IS NULL OR x.currency = u.currency)
            ORDER BY x.id LIMIT 1)
      ) w ON true
      -- A transfer to a user: that user's active wallet in the currency.
      LEFT JOIN LATERAL (
          SELECT x.id FROM ledger.wallets x
           WHERE u.to_user IS NOT NULL AND x.owner_id = u.to_user AND x.currency = coalesce(u.currency, w.currency)
             AND x.status = 'active'
           ORDER BY x.id LIMIT 1
      ) tu ON true;

    RETURN QUERY
    SELECT a.idx, NULL::text, NULL::text, a.transaction_id, 'queued'::text, a.sequence, a.to_sequence, true, NULL::text,
           v_wallet[a.idx], v_to[a.idx], v_currency[a.idx],
           to_char(a.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
      FROM ledger.accept_transactions(p_scope, p_key, p_type, v_wallet, v_to, p_amount, v_currency, p_description,
                                      p_metadata, 'api') a;
END $$;
