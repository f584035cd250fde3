-- The PostgreSQL roles of kokin-gateway (run once, as a superuser, on the primary).
--   kokin_owner: owns the schema; only migrations (kokin-migrate.service) connect as it.
--   kokin_app:   the runtime role of the web and the scheduler. `kokin db grant-runtime kokin_app`
--                (run after every upgrade) gives it SELECT, INSERT, UPDATE, DELETE on the tables,
--                and on the audit record `events` INSERT and SELECT only.
--   kokin_backup: pg_dump's role (read-only).
CREATE ROLE kokin_owner LOGIN PASSWORD NULL;  -- set a password, or use certificate authentication
CREATE ROLE kokin_app LOGIN PASSWORD NULL;
CREATE ROLE kokin_backup LOGIN PASSWORD NULL IN ROLE pg_read_all_data;
CREATE DATABASE kokin OWNER kokin_owner ENCODING 'UTF8' LC_COLLATE 'C.UTF-8' LC_CTYPE 'C.UTF-8' TEMPLATE template0;
\connect kokin
REVOKE ALL ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO kokin_app, kokin_backup;
-- The app never creates tables: its temporary tables (imports) need only TEMPORARY on the database.
GRANT CONNECT, TEMPORARY ON DATABASE kokin TO kokin_app;
GRANT CONNECT ON DATABASE kokin TO kokin_backup;
