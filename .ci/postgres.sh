# Sourced by `make test`: start a throwaway PostgreSQL on loopback and export GOVBOT_TEST_PG_URL,
# so the scale-out tests (several workers claiming rows with SKIP LOCKED) run against the real thing.
# A URL already in GOVBOT_TEST_PG_URL is used as it is.
if [ -n "${GOVBOT_TEST_PG_URL:-}" ]; then return 0; fi
pg_bin=""
for d in /usr/lib/postgresql/*/bin; do [ -x "$d/initdb" ] && pg_bin="$d"; done
if [ -z "$pg_bin" ]; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null) || true
    for d in /usr/lib/postgresql/*/bin; do [ -x "$d/initdb" ] && pg_bin="$d"; done
  fi
fi
if [ -n "$pg_bin" ]; then
  pg_dir=$(mktemp -d /tmp/govbot-pg.XXXXXX)
  pg_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  run_as=""
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
    chown postgres "$pg_dir"
    run_as="runuser -u postgres --"
  fi
  $run_as "$pg_bin/initdb" -D "$pg_dir/data" -U govbot --auth=trust -E UTF8 >/dev/null
  $run_as "$pg_bin/pg_ctl" -D "$pg_dir/data" -o "-p $pg_port -k $pg_dir -c listen_addresses=127.0.0.1 -c fsync=off" -l "$pg_dir/log" -w start >/dev/null
  export GOVBOT_TEST_PG_URL="postgresql+psycopg://govbot@127.0.0.1:$pg_port/postgres"
  trap '$run_as "$pg_bin/pg_ctl" -D "$pg_dir/data" -m fast stop >/dev/null 2>&1; rm -rf "$pg_dir"' EXIT
  echo "PostgreSQL for tests at $GOVBOT_TEST_PG_URL"
else
  echo "PostgreSQL not available: the PostgreSQL tests will fail" >&2
fi
