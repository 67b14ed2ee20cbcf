-- Cluster-wide login roles, one per service plus the migration owner. Idempotent.
-- psql variables: :password (the same dev password for all; production sets its own).
SELECT format('CREATE ROLE %I LOGIN', r)
  FROM unnest(ARRAY['txp_admin','txp_ledger','txp_gateway','txp_plaid','txp_notify']) AS r
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) \gexec
SELECT format('ALTER ROLE %I LOGIN PASSWORD %L', r, :'password')
  FROM unnest(ARRAY['txp_admin','txp_ledger','txp_gateway','txp_plaid','txp_notify']) AS r \gexec
ALTER ROLE txp_admin CREATEDB;
