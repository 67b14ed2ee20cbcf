-- The notifier: the user-facing accounting feed, webhook subscriptions and their deliveries.
-- Runs as txp_notify, the owner of schema notify.
--
-- Privileges (least privilege, see ARCHITECTURE.md "Data"): the gateway reads the feed and
-- the deliveries, reads subscriptions WITHOUT their sealed secret (column grant), and
-- changes subscriptions only through the SECURITY DEFINER functions create_subscription and
-- delete_subscription, which enforce the per-user limit and cancel pending deliveries; it has
-- no INSERT/UPDATE/DELETE on any notify table. The secret is sealed (AES-256-GCM) by the
-- caller with TXP_WEBHOOK_SECRET_KEY before it reaches the database, so neither the
-- database nor a dump ever holds it in clear.

-- One row per user-visible update. An event yields one entry per leg: leg 0 is the event's
-- own wallet (its owner), leg 1 the destination of a completed transfer (its owner).
CREATE TABLE notifications (
    id                     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id               text NOT NULL CHECK (length(event_id) BETWEEN 1 AND 200),
    leg                    smallint NOT NULL DEFAULT 0 CHECK (leg IN (0, 1)),
    user_id                bigint NOT NULL,
    -- Increasing in commit order per user (taken from the user's feed_heads row, locked to the
    -- commit): the SSE id and the Last-Event-ID resume cursor, safe across replicas.
    user_seq               bigint NOT NULL,
    event_type             text NOT NULL,  -- the routing key, e.g. tx.completed
    message_type           text NOT NULL,  -- the AMQP type, e.g. tx.event.v1
    wallet_id              bigint,
    counterparty_wallet_id bigint,
    transaction_id         uuid,
    transaction_type       text,
    direction              text CHECK (direction IN ('debit', 'credit')),
    amount                 bigint,
    currency               char(3),
    balance_after          bigint,
    status                 text,
    reason                 text,
    occurred_at            timestamptz NOT NULL,
    created_at             timestamptz NOT NULL DEFAULT now(),
    payload                jsonb NOT NULL,  -- the event as received
    CONSTRAINT notifications_event_leg UNIQUE (event_id, leg),
    CONSTRAINT notifications_user_seq UNIQUE (user_id, user_seq)
);
CREATE INDEX notifications_user_wallet ON notifications (user_id, wallet_id, user_seq);

CREATE TABLE feed_heads (
    user_id  bigint PRIMARY KEY,
    last_seq bigint NOT NULL DEFAULT 0
);

CREATE TABLE webhook_subscriptions (
    id              uuid PRIMARY KEY,
    user_id         bigint NOT NULL,
    url             text NOT NULL CHECK (url ~* '^https?://' AND length(url) <= 2048),
    -- host[:port]: the unit of per-endpoint delivery concurrency.
    endpoint        text GENERATED ALWAYS AS (lower(substring(url FROM '^[A-Za-z][A-Za-z0-9+.-]*://([^/?#]*)'))) STORED,
    -- Exact types ("tx.completed"), prefixes ("tx.*") or "*".
    event_types     text[] NOT NULL CHECK (cardinality(event_types) BETWEEN 1 AND 32),
    secret_sealed   text NOT NULL,
    active          boolean NOT NULL DEFAULT true,
    failure_count   bigint NOT NULL DEFAULT 0,
    last_failure_at timestamptz,
    last_failure_reason text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    deleted_at      timestamptz
);
CREATE INDEX webhook_subscriptions_user ON webhook_subscriptions (user_id) WHERE active;

CREATE TABLE deliveries (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    notification_id bigint NOT NULL REFERENCES notifications (id),
    subscription_id uuid NOT NULL REFERENCES webhook_subscriptions (id),
    user_id         bigint NOT NULL,
    event_id        text NOT NULL,
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'delivered', 'failed', 'parked', 'cancelled')),
    attempts        integer NOT NULL DEFAULT 0,
    last_status     integer,  -- HTTP status of the last attempt, if any
    last_error      text,
    -- When pending: when the next attempt is due. While an attempt is in flight it is pushed
    -- past the attempt's deadline (a lease), so a crashed replica's attempt is retried.
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT deliveries_once UNIQUE (notification_id, subscription_id)
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX deliveries_subscription ON deliveries (subscription_id, created_at);

-- Whether a subscription's filter matches an event type.
CREATE FUNCTION type_matches(filters text[], event_type text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT EXISTS (
        SELECT 1 FROM unnest(filters) f
         WHERE f = '*' OR f = event_type
            OR (right(f, 2) = '.*' AND left(event_type, length(f) - 1) = left(f, length(f) - 1)))
$$;

-- The gateway creates subscriptions only through this function. The caller has checked the
-- URL with txp::notifier::check_webhook_url and sealed the secret with seal_secret(key,
-- secret, id). Returns false when the user already has 20 active subscriptions.
CREATE FUNCTION create_subscription(p_id uuid, p_user_id bigint, p_url text, p_event_types text[], p_secret_sealed text)
RETURNS boolean LANGUAGE plpgsql SECURITY DEFINER SET search_path = notify, pg_temp AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('txp.notify.subscriptions'), hashtext(p_user_id::text));
    IF (SELECT count(*) FROM webhook_subscriptions WHERE user_id = p_user_id AND active) >= 20 THEN
        RETURN false;
    END IF;
    IF EXISTS (SELECT 1 FROM unnest(p_event_types) f WHERE f !~ '^(\*|[a-z0-9_]+(\.[a-z0-9_]+)*(\.\*)?)$') THEN
        RAISE EXCEPTION 'invalid event type filter' USING ERRCODE = '22023';
    END IF;
    INSERT INTO webhook_subscriptions (id, user_id, url, event_types, secret_sealed)
    VALUES (p_id, p_user_id, p_url, p_event_types, p_secret_sealed);
    RETURN true;
END $$;

-- Deactivates a user's subscription (kept for its delivery history) and cancels its pending
-- deliveries. Returns false when the user has no such active subscription.
CREATE FUNCTION delete_subscription(p_user_id bigint, p_id uuid) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = notify, pg_temp AS $$
BEGIN
    UPDATE webhook_subscriptions SET active = false, deleted_at = now()
     WHERE id = p_id AND user_id = p_user_id AND active;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    UPDATE deliveries SET status = 'cancelled', last_error = 'subscription deleted', updated_at = now()
     WHERE subscription_id = p_id AND status = 'pending';
    RETURN true;
END $$;

REVOKE ALL ON FUNCTION create_subscription(uuid, bigint, text, text[], text) FROM PUBLIC;
REVOKE ALL ON FUNCTION delete_subscription(bigint, uuid) FROM PUBLIC;

GRANT USAGE ON SCHEMA notify TO txp_gateway;
GRANT SELECT ON notifications, deliveries TO txp_gateway;
GRANT SELECT (id, user_id, url, endpoint, event_types, active, failure_count, last_failure_at, last_failure_reason,
              created_at, deleted_at)
   ON webhook_subscriptions TO txp_gateway;
GRANT EXECUTE ON FUNCTION create_subscription(uuid, bigint, text, text[], text) TO txp_gateway;
GRANT EXECUTE ON FUNCTION delete_subscription(bigint, uuid) TO txp_gateway;
GRANT EXECUTE ON FUNCTION type_matches(text[], text) TO txp_gateway;
