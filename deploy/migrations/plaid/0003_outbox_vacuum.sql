-- As the gateway's outbox (gateway migration 0005): a queue table, vacuumed once 5,000 rows
-- are dead rather than once a fifth of it is.
ALTER TABLE outbox SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 5000,
                        autovacuum_vacuum_cost_delay = 0);
