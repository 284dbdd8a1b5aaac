#!/usr/bin/env bash
# Runs every PingTower test: unit tests, the store conformance suite on SQLite and PostgreSQL,
# the bus conformance suite on the in-process bus and RabbitMQ, the query cache on a real Redis, the end-to-end tests of the `pingtower` binary, a short run
# of the events benchmark, and schemathesis
# against the running server's OpenAPI document (scripts/schemathesis.sh; installs schemathesis
# from PyPI into /var/tmp/pingtower-venv on first use).
#
# It sets up what the tests need first: Chromium and chromedriver (Debian's packages) and
# axe-core (npm) for the browser test, a PostgreSQL server on 127.0.0.1 (started if it is
# installed but down, installed from Debian's packages if missing and this runs as root).
# Tests find it through PINGTOWER_TEST_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/test)
# and give every test a database of its own, dropped afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."

export PINGTOWER_TEST_POSTGRES_URL="${PINGTOWER_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"
export PINGTOWER_TEST_REDIS_URL="${PINGTOWER_TEST_REDIS_URL:-redis://127.0.0.1:6379/0}"
export PINGTOWER_TEST_AMQP_URL="${PINGTOWER_TEST_AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}"

say() { printf '[test] %s\n' "$*" >&2; }

pg_host_port() {
  # host and port from the URL (postgres://user[:pw]@host:port/db)
  local rest=${PINGTOWER_TEST_POSTGRES_URL#*://}
  rest=${rest#*@}
  rest=${rest%%/*}
  PG_HOST=${rest%%:*}
  PG_PORT=${rest##*:}
  [ "$PG_PORT" = "$rest" ] && PG_PORT=5432
  return 0
}

pg_answers() {
  if command -v pg_isready >/dev/null 2>&1; then
    pg_isready -q -h "$PG_HOST" -p "$PG_PORT"
  else
    (exec 3<>"/dev/tcp/$PG_HOST/$PG_PORT") 2>/dev/null
  fi
}

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null 2>&1; then sudo "$@"; else return 1; fi
}

ensure_postgres() {
  pg_host_port
  pg_answers || start_postgres
  ensure_test_database
}

start_postgres() {
  if ! command -v pg_ctlcluster >/dev/null 2>&1; then
    say "PostgreSQL is not installed; installing it from Debian's packages"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    local version hba
    version=$(ls /etc/postgresql | sort -V | tail -n 1)
    hba="/etc/postgresql/$version/main/pg_hba.conf"
    # Tests connect over TCP on loopback as `postgres` without a password.
    as_root sed -i -E 's/^(host\s+all\s+all\s+(127\.0\.0\.1\/32|::1\/128)\s+)\S+/\1trust/' "$hba"
  fi
  say "starting PostgreSQL"
  for version in $(ls /etc/postgresql 2>/dev/null); do
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start 2>/dev/null || true
  done
  for _ in $(seq 1 30); do
    pg_answers && break
    sleep 1
  done
  pg_answers || { say "PostgreSQL does not answer on $PG_HOST:$PG_PORT"; exit 1; }
}

ensure_test_database() {
  local db=${PINGTOWER_TEST_POSTGRES_URL##*/}
  db=${db%%\?*}
  if command -v psql >/dev/null 2>&1 && [ -n "$db" ]; then
    psql "${PINGTOWER_TEST_POSTGRES_URL%/*}/postgres" -qAtc "SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1 \
      || psql "${PINGTOWER_TEST_POSTGRES_URL%/*}/postgres" -qc "CREATE DATABASE \"$db\""
  fi
}

drop_leftover_test_databases() {
  command -v psql >/dev/null 2>&1 || return 0
  # Databases of test runs that were killed before they could clean up (older than an hour).
  psql "$PINGTOWER_TEST_POSTGRES_URL" -qAt -c "SELECT datname FROM pg_database d WHERE datname LIKE 'pingtower\_test\_%' AND (pg_stat_file('base/' || oid || '/PG_VERSION')).modification < now() - interval '1 hour'" 2>/dev/null \
    | while read -r name; do
        psql "$PINGTOWER_TEST_POSTGRES_URL" -qc "DROP DATABASE IF EXISTS \"$name\" WITH (FORCE)" >/dev/null 2>&1 || true
      done
}

rabbitmq_answers() {
  (exec 3<>"/dev/tcp/$AMQP_HOST/$AMQP_PORT") 2>/dev/null
}

redis_answers() {
  # PING in the Redis protocol; a Redis answers +PONG.
  # (In a group: `exec` with a redirection alone would send this whole script's stderr away.)
  { exec 4<>/dev/tcp/127.0.0.1/6379; } 2>/dev/null || return 1
  printf 'PING\r\n' >&4
  local reply
  read -r -t 2 reply <&4 || true
  exec 4<&- 4>&-
  [[ "$reply" == +PONG* ]]
}

ensure_redis() {
  # The query cache shared by several API processes is tested against a real Redis.
  redis_answers && return 0
  if ! command -v redis-server >/dev/null 2>&1; then
    say "Redis is missing; installing it from Debian's packages"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
  fi
  say "starting Redis on 127.0.0.1:6379"
  mkdir -p /var/tmp/pingtower-redis
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --dir /var/tmp/pingtower-redis --logfile /var/tmp/pingtower-redis/redis.log
  for _ in $(seq 1 50); do redis_answers && return 0; sleep 0.1; done
  say "Redis does not answer on 127.0.0.1:6379"
  exit 1
}

ensure_rabbitmq() {
  # The bus conformance suite and the split-roles test need RabbitMQ (3.8 or newer: quorum
  # queues) at PINGTOWER_TEST_AMQP_URL; started if installed but down, installed from Debian's
  # packages if missing and this runs as root.
  local rest=${PINGTOWER_TEST_AMQP_URL#*://}
  rest=${rest#*@}
  rest=${rest%%/*}
  AMQP_HOST=${rest%%:*}
  AMQP_PORT=${rest##*:}
  [ "$AMQP_PORT" = "$rest" ] && AMQP_PORT=5672
  rabbitmq_answers && return 0
  if ! command -v rabbitmq-server >/dev/null 2>&1; then
    say "RabbitMQ is not installed; installing it from Debian's packages"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rabbitmq-server >/dev/null
  fi
  say "starting RabbitMQ"
  as_root rabbitmq-server -detached >/dev/null 2>&1 || true
  for _ in $(seq 1 60); do
    rabbitmq_answers && break
    sleep 1
  done
  rabbitmq_answers || { say "RabbitMQ does not answer on $AMQP_HOST:$AMQP_PORT"; exit 1; }
  # The port opens a moment before the broker takes connections.
  command -v rabbitmqctl >/dev/null 2>&1 && as_root rabbitmqctl await_startup >/dev/null 2>&1 || true
}

ensure_python_tools() {
  # A real SMTP server for the email tests (aiosmtpd) and schemathesis, from PyPI, in a
  # virtual environment outside the clone.
  local venv="${PINGTOWER_VENV:-/var/tmp/pingtower-venv}"
  if ! "$venv/bin/python" -c "import aiosmtpd, schemathesis" 2>/dev/null; then
    say "installing aiosmtpd and schemathesis into $venv"
    if ! command -v python3 >/dev/null 2>&1 || ! python3 -c "import venv, ensurepip" >/dev/null 2>&1; then
      say "Python 3 with venv is missing; installing it from Debian's packages"
      as_root apt-get update -qq
      as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv >/dev/null
    fi
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet "aiosmtpd==1.4.6" "schemathesis==4.32.5"
  fi
  export PINGTOWER_TEST_PYTHON="$venv/bin/python"
}

ensure_browser() {
  # Debian's Chromium and chromedriver for the web dashboard's browser test
  # (crates/pingtower/tests/browser.rs).
  if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
    return 0
  fi
  say "installing Chromium and chromedriver from Debian's packages"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
}

ensure_axe() {
  # axe-core from the npm registry: the browser test injects it into pages to check their
  # accessibility. Pinned; kept outside the clone.
  local dir="${PINGTOWER_AXE_DIR:-/var/tmp/pingtower-axe}" version="4.14.1"
  if ! grep -qs "\"version\": \"$version\"" "$dir/node_modules/axe-core/package.json"; then
    if ! command -v npm >/dev/null 2>&1; then
      say "npm is missing; installing it from Debian's packages"
      as_root apt-get update -qq
      as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm >/dev/null
    fi
    say "installing axe-core $version into $dir"
    mkdir -p "$dir"
    npm install --prefix "$dir" --no-audit --no-fund --silent "axe-core@$version"
  fi
  export PINGTOWER_TEST_AXE="$dir/node_modules/axe-core/axe.min.js"
}

command -v cargo >/dev/null 2>&1 || { say "cargo is missing: install Rust (https://rustup.rs) first"; exit 1; }
ensure_python_tools
ensure_browser
ensure_axe
ensure_postgres
drop_leftover_test_databases
ensure_rabbitmq
ensure_redis

say "running the test suite"
cargo test --workspace --all-targets --no-fail-fast

say "fuzzing the REST API with schemathesis (in a network namespace with only loopback)"
bash scripts/schemathesis.sh

say "a short run of the events benchmark on SQLite and PostgreSQL (the full one: README, Performance)"
cargo build --quiet -p pingtower-bench
bench="${CARGO_TARGET_DIR:-target}/debug/pingtower-bench"
# Over one day, batches land as blocks at once; in random order over a month, as rows packed later.
"$bench" events --events 20000 --days 1 --repeat 1 >/dev/null
"$bench" events --events 5000 --arrival random --repeat 1 >/dev/null
"$bench" events --backend postgres --events 20000 --days 1 --repeat 1 >/dev/null
"$bench" events --backend postgres --events 5000 --arrival random --repeat 1 >/dev/null
