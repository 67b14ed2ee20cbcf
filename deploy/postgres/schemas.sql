-- Per-database set-up, run once by a superuser: one schema per service, owned by the
-- service's role, which applies that schema's migrations at start. Idempotent.
REVOKE ALL ON SCHEMA public FROM PUBLIC;
REVOKE ALL ON DATABASE :"DBNAME" FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE :"DBNAME" TO txp_admin, txp_ledger, txp_gateway, txp_plaid, txp_notify;
CREATE SCHEMA IF NOT EXISTS ledger  AUTHORIZATION txp_ledger;
CREATE SCHEMA IF NOT EXISTS gateway AUTHORIZATION txp_gateway;
CREATE SCHEMA IF NOT EXISTS plaid   AUTHORIZATION txp_plaid;
CREATE SCHEMA IF NOT EXISTS notify  AUTHORIZATION txp_notify;
-- Migrations run by one role may grant to others; the roles must see each other's schemas
-- only where migrations grant it explicitly.
