#!/usr/bin/env bash
# Make sure the database servers the tests use are running on this machine.
# PostgreSQL (127.0.0.1:5432, trust auth) and MariaDB (127.0.0.1:3306) come preinstalled on
# the project's machines; if one has stopped, start it the way the machine's docs say. If a
# server is not installed at all, install it from Debian's packages.
set -uo pipefail

pg_up() { pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; }

if ! command -v pg_isready >/dev/null 2>&1; then
  echo "services: installing PostgreSQL from Debian packages" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
if ! pg_up; then
  echo "services: starting PostgreSQL" >&2
  for v in $(ls /etc/postgresql 2>/dev/null); do
    pg_ctlcluster --skip-systemctl-redirect "$v" main start || true
  done
  for _ in $(seq 1 30); do pg_up && break; sleep 1; done
fi
if ! pg_up; then
  echo "services: PostgreSQL is not reachable at 127.0.0.1:5432" >&2
  exit 1
fi
echo "services: PostgreSQL ready" >&2
