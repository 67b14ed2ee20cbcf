-- Recovery of lost sync jobs (plaid.sync.v1 messages that the broker lost before any
-- consumer saw them). Whoever queues a sync job marks the item in the same transaction
-- (sync_wanted_at); every sync round marks it when it starts (sync_attempted_at). A sync
-- wanted well before now and not attempted since is a lost message: plaid-sync's recovery
-- queues it again (sync_service.cpp). Jobs that were attempted and failed are the broker's
-- retry and error routing's business, as before, not the recovery's.
ALTER TABLE items ADD COLUMN sync_wanted_at timestamptz,
                  ADD COLUMN sync_attempted_at timestamptz;

CREATE INDEX items_sync_unattempted ON items (sync_wanted_at)
    WHERE sync_attempted_at IS NULL OR sync_attempted_at < sync_wanted_at;

-- The gateway queues manual, link and webhook syncs through its own outbox and may not
-- UPDATE items itself.
CREATE FUNCTION want_sync(p_item_id text)
RETURNS void LANGUAGE sql SECURITY DEFINER SET search_path = plaid, pg_temp AS $$
    UPDATE items SET sync_wanted_at = now() WHERE item_id = p_item_id;
$$;
REVOKE ALL ON FUNCTION want_sync(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION want_sync(text) TO txp_gateway;
