-- Run once by the postgres image's entrypoint, on an empty data directory only
-- (mounted into /docker-entrypoint-initdb.d by docker-compose.yml), as POSTGRES_USER.
--   gavel    read models and sink offsets (`gavel migrate`, the init step, creates them)
--   apicurio the schema registry's SQL storage (Apicurio creates its tables)
-- Idempotent (psql \gexec), so it also tolerates POSTGRES_DB being set to one of them.
SELECT 'CREATE DATABASE gavel OWNER gavel'
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'gavel')\gexec

SELECT 'CREATE DATABASE apicurio OWNER gavel'
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'apicurio')\gexec
