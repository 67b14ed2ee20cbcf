-- Whether the relay publishes a row as mandatory (amqp::outgoing::mandatory). Every message
-- so far is (unroutable: it stays pending and is retried); a broadcast that may have no
-- listener at the moment, such as auth.token_revoked, is not, so that it can never hold up
-- the relay.
ALTER TABLE outbox ADD COLUMN mandatory boolean NOT NULL DEFAULT true;
