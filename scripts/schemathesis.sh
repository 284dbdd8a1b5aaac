#!/usr/bin/env bash
# Fuzzes the REST API with schemathesis against the server's own OpenAPI document: no 5xx and
# no answer that breaks the schema. The server and schemathesis run inside a network namespace
# that has only loopback, so monitors aimed at made-up hosts (0.com, x.dev, ...) resolve and
# reach nothing outside this machine; not even a DNS query leaves it.
#
# Usage: scripts/schemathesis.sh [BINARY]   (scripts/test.sh runs it)
set -euo pipefail

cd "$(dirname "$0")/.."
target_dir="${CARGO_TARGET_DIR:-target}"
bin="${1:-$target_dir/debug/pingtower}"
venv="${PINGTOWER_VENV:-/var/tmp/pingtower-venv}"
examples="${PINGTOWER_FUZZ_EXAMPLES:-25}"
st_version="4.32.5"

if [[ ! -x "$venv/bin/schemathesis" ]] || ! "$venv/bin/schemathesis" --version | grep -q "$st_version"; then
    echo "installing schemathesis $st_version into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet "schemathesis==$st_version"
fi
if [[ ! -x "$bin" ]]; then
    cargo build --quiet --bin pingtower
fi
# As root, a plain network namespace; otherwise one inside a user namespace.
unshare_cmd=(unshare -n)
if [[ "$(id -u)" != 0 ]]; then
    unshare_cmd=(unshare -r -n)
fi

work="$(mktemp -d)"
report="$target_dir/schemathesis"
mkdir -p "$report"
trap 'rm -rf "$work"' EXIT

# Everything below runs with loopback as the only interface.
"${unshare_cmd[@]}" env BIN="$(realpath "$bin")" VENV="$venv" WORK="$work" EXAMPLES="$examples" \
    FIXTURES="$(realpath scripts/schemathesis_fixtures.py)" \
    REPORT="$(realpath "$report")" bash -euo pipefail -c '
ip link set lo up
port=18080
base="http://127.0.0.1:$port"
cd "$WORK"
PINGTOWER_ADMIN_EMAIL=fuzz@example.test PINGTOWER_ADMIN_PASSWORD=fuzz-password-1 \
    PINGTOWER_LOG=warn "$BIN" serve --listen "127.0.0.1:$port" >"$WORK/server.log" 2>&1 &
server=$!
trap "kill $server 2>/dev/null || true" EXIT
for _ in $(seq 1 100); do
    if "$VENV/bin/python" -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1])" "$base/healthz" 2>/dev/null; then
        break
    fi
    sleep 0.1
done
key="$("$VENV/bin/python" "$FIXTURES" "$base" "$WORK/schemathesis.toml")" || { cat "$WORK/server.log" >&2; exit 1; }
status=0
# Every operation runs, on real objects (scripts/schemathesis_fixtures.py binds each `{id}` to
# one); those that could lock the fuzzer out act on objects of their own. The live event stream
# is left out: it never ends (its own tests read it).
"$VENV/bin/schemathesis" --config-file "$WORK/schemathesis.toml" run "$base/api/v1/openapi.json" \
    --header "Authorization: Bearer $key" \
    --checks not_a_server_error,response_schema_conformance \
    --max-examples "$EXAMPLES" --seed 1 --workers 1 \
    --exclude-name "GET /api/v1/events/stream" \
    --report junit --report-dir "$REPORT" || status=$?
if grep -q "panicked" "$WORK/server.log"; then
    echo "the server panicked:" >&2
    grep -B2 -A5 "panicked" "$WORK/server.log" >&2
    status=1
fi
exit $status
'
