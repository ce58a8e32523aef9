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

# MariaDB (127.0.0.1:3306, root, empty password): the SQL-view connector tests read real views.
my_up() { mariadb -h 127.0.0.1 -P 3306 -u root -e 'SELECT 1' >/dev/null 2>&1; }
if ! command -v mariadb >/dev/null 2>&1; then
  echo "services: installing MariaDB from Debian packages" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mariadb-server mariadb-client >/dev/null
fi
if ! my_up; then
  echo "services: starting MariaDB" >&2
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd || true
  for _ in $(seq 1 30); do my_up && break; sleep 1; done
fi
if ! my_up; then
  echo "services: MariaDB is not reachable at 127.0.0.1:3306 as root" >&2
  exit 1
fi
echo "services: MariaDB ready" >&2
