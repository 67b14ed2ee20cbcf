-- The outbox is a queue table: under load thousands of rows a second are inserted, published
-- and deleted within moments. With the default autovacuum settings (20 % of the table dead,
-- looked at once a minute) it held 60,000-80,000 dead rows in 3,000-4,600 pages, and every
-- relay batch stepped over their index entries. Vacuum it once 5,000 rows are dead, without
-- cost-based pauses (a vacuum of it is small); autovacuum_naptime (deploy/postgres/txp.conf)
-- says how often autovacuum looks.
ALTER TABLE outbox SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 5000,
                        autovacuum_vacuum_cost_delay = 0);
