-- Run by the postgres image's entrypoint on the first start (empty data directory).
-- A login role per gavel role with Postgres rights (deploy/access.txt), with this
-- overlay's and docker-compose.yml's LOCAL DEFAULT passwords (Secrets gavel-role-<role>
-- in kustomization.yaml, deploy/compose/credentials/<role>.env).
-- They own nothing and may create nothing; the init Job's `gavel migrate` grants them.
CREATE ROLE gavel_sink LOGIN PASSWORD 'local-sink';
CREATE ROLE gavel_event_store LOGIN PASSWORD 'local-event-store';
CREATE ROLE gavel_participants LOGIN PASSWORD 'local-participants';
CREATE ROLE gavel_outbox_relay LOGIN PASSWORD 'local-outbox-relay';
CREATE ROLE gavel_command_api LOGIN PASSWORD 'local-command-api';
CREATE ROLE gavel_query_api LOGIN PASSWORD 'local-query-api';
CREATE ROLE gavel_audit LOGIN PASSWORD 'local-audit';
