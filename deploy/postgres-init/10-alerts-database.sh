#!/bin/sh
# The timeline's own role and database beside Dagster's (the official postgres image runs
# this once, when the data volume is empty). ALERTS_DB_PASSWORD comes from postgres.env.
set -eu
: "${ALERTS_DB_PASSWORD:?set ALERTS_DB_PASSWORD in deploy/postgres.env}"
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
     -v alerts_password="$ALERTS_DB_PASSWORD" <<'SQL'
CREATE ROLE alerts LOGIN PASSWORD :'alerts_password';
CREATE DATABASE alerts OWNER alerts;
SQL
