# shellcheck shell=bash
# Sourced by scripts/fuzz-api and scripts/client-check: the pinned contract tools, the
# local API on free ports with fresh in-memory storage (stopped when the script exits),
# its seeded team, project, key and session, and the spec under test.
#
# After `contract_init NAME`:
#   contract_venv          installs tools/contract/requirements.txt once; sets CONTRACT_BIN
#   contract_spec_early    checks a spec file before anything starts (not OPENAPI_SPEC=url)
#   localapi_start         builds (or takes BILLSTACK_LOCAL_BIN) and starts the local API;
#                          exports LOCALAPI_URL, BILLSTACK_TEAM_ID, BILLSTACK_PROJECT_ID,
#                          BILLSTACK_API_KEY, BILLSTACK_SESSION_TOKEN
#   localapi_seed          real objects through the API; exports BILLSTACK_CUSTOMER_ID & co.
#   contract_spec          sets CONTRACT_SPEC, a file: OPENAPI_SPEC (default docs/openapi.json),
#                          or with OPENAPI_SPEC=url the one the local API serves
#
# The run folder (CONTRACT_RUN, private, removed at exit unless CONTRACT_KEEP=1) holds the
# local API's output, which has the seeded key and session in it: nothing here prints them.

contract_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
contract_dir="$contract_root/tools/contract"

contract_log() { echo "$CONTRACT_NAME: $*" >&2; }
contract_die() { contract_log "$*"; exit 1; }

contract_init() {
  CONTRACT_NAME="$1"
  # No __pycache__ in tools/contract from the helpers and hooks.
  export PYTHONDONTWRITEBYTECODE=1
  LOCALAPI_PID=""
  CONTRACT_RUN="$(mktemp -d "${TMPDIR:-/tmp}/billstack-$1.XXXXXX")"
  chmod 700 "$CONTRACT_RUN"
  trap contract_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}

contract_cleanup() {
  local status=$?
  localapi_stop
  if [ "${CONTRACT_KEEP:-0}" = 1 ]; then
    contract_log "kept the run folder $CONTRACT_RUN (it holds the local API's key and session)"
  else
    rm -rf "$CONTRACT_RUN"
  fi
  exit "$status"
}

# --- the pinned tools ----------------------------------------------------------------------

contract_venv() {
  local cache venv stamp pins python
  cache="${BILLSTACK_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/billstack}"
  venv="$cache/contract-venv"
  stamp="$venv/.installed-contract"
  pins="$(grep -v '^#' "$contract_dir/requirements.txt" | sed '/^[[:space:]]*$/d')"
  CONTRACT_BIN="$venv/bin"
  if [ -x "$venv/bin/schemathesis" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$pins" ]; then
    return 0
  fi
  # One install at a time: the two scripts may start together.
  mkdir -p "$cache"
  exec 8>"$cache/.contract-venv.lock"
  if command -v flock >/dev/null 2>&1; then
    flock 8
  fi
  if [ -x "$venv/bin/schemathesis" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$pins" ]; then
    exec 8>&-
    return 0
  fi
  python="$(command -v python3 || true)"
  [ -n "$python" ] || contract_die "python3 is needed (apt-get install python3 python3-venv)"
  "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || contract_die "python3 is $("$python" -V 2>&1); schemathesis 4 and openapi-python-client need 3.11+"
  if [ ! -x "$venv/bin/pip" ]; then
    "$python" -m venv "$venv" >&2 || contract_die "cannot create a virtualenv (apt-get install python3-venv)"
  fi
  contract_log "installing tools/contract/requirements.txt into $venv"
  rm -f "$stamp"
  "$venv/bin/pip" install --quiet --disable-pip-version-check --no-input \
    -r "$contract_dir/requirements.txt" >&2
  "$venv/bin/pip" check >&2 || contract_die "the pinned requirements do not fit together (pip check)"
  echo "$pins" > "$stamp"
  exec 8>&-
}

contract_python() { "$CONTRACT_BIN/python" "$contract_dir/contract.py" "$@"; }

# --- the spec ------------------------------------------------------------------------------

contract_spec_early() {
  local spec="${OPENAPI_SPEC:-docs/openapi.json}"
  case "$spec" in
    url | http://* | https://*) return 0 ;;
  esac
  case "$spec" in
    /*) CONTRACT_SPEC="$spec" ;;
    *) CONTRACT_SPEC="$contract_root/$spec" ;;
  esac
  [ -f "$CONTRACT_SPEC" ] || contract_die "no spec at $CONTRACT_SPEC (set OPENAPI_SPEC to a file, or OPENAPI_SPEC=url for the served one)"
  contract_python check-spec "$CONTRACT_SPEC"
}

contract_spec() {
  local spec="${OPENAPI_SPEC:-docs/openapi.json}" url
  case "$spec" in
    url) url="$LOCALAPI_URL/openapi.json" ;;
    http://* | https://*) url="$spec" ;;
    *) [ -n "${CONTRACT_SPEC:-}" ] || contract_spec_early; return 0 ;;
  esac
  CONTRACT_SPEC="$CONTRACT_RUN/openapi.json"
  curl -fsS --max-time 30 -o "$CONTRACT_SPEC" "$url" \
    || contract_die "cannot fetch the spec from $url"
  contract_log "spec from $url"
  contract_python check-spec "$CONTRACT_SPEC"
}

# --- the local API -------------------------------------------------------------------------

localapi_bin() {
  if [ -n "${BILLSTACK_LOCAL_BIN:-}" ]; then
    [ -x "$BILLSTACK_LOCAL_BIN" ] || contract_die "BILLSTACK_LOCAL_BIN=$BILLSTACK_LOCAL_BIN is not an executable"
    LOCALAPI_BIN="$BILLSTACK_LOCAL_BIN"
    return 0
  fi
  # --workspace: dependencies get the features the whole workspace (and so scripts/test)
  # gives them, and a build after the tests reuses theirs. `-p billstack-local` would
  # resolve its own, fewer, features and build most dependencies again (12 min in CI).
  contract_log "building billstack-local (cargo build --locked --workspace --bin billstack-local)"
  (cd "$contract_root" && cargo build --locked --workspace --bin billstack-local >&2)
  LOCALAPI_BIN="${CARGO_TARGET_DIR:-$contract_root/target}/debug/billstack-local"
  case "$LOCALAPI_BIN" in
    /*) ;;
    *) LOCALAPI_BIN="$contract_root/$LOCALAPI_BIN" ;;
  esac
  [ -x "$LOCALAPI_BIN" ] || contract_die "cargo built no $LOCALAPI_BIN"
}

# Three free loopback ports: the API, the Stripe emulator and the development issuer
# (DynamoDB Local and moto pick their own).
localapi_ports() {
  "$CONTRACT_BIN/python" -c '
import socket
socks = [socket.socket() for _ in range(3)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))'
}

localapi_start() {
  local attempt ports api_port stripe_port issuer_port waited started
  local timeout="${LOCALAPI_START_TIMEOUT:-300}"
  localapi_bin
  # Java, npm and python3-venv for DynamoDB Local and moto, as scripts/local has them.
  "$contract_root/scripts/setup"
  for attempt in 1 2 3; do
    ports="$(localapi_ports)"
    read -r api_port stripe_port issuer_port <<<"$ports"
    : >"$CONTRACT_RUN/local.out"
    # Fresh in-memory storage and the in-process emulator, issuer and KMS: none of a
    # developer's local.env settings may point it elsewhere.
    (
      cd "$contract_root" || exit 1
      exec env -u DYNAMODB_ENDPOINT -u AWS_ENDPOINT_URL_KMS -u KMS_KEY_ID \
        -u STRIPE_API_BASE -u STRIPE_SECRET_KEY -u AUTH_ISSUER -u AUTH_AUDIENCE -u AUTH_JWKS_URL \
        TABLE_NAME=billstack-contract DYNAMODB_LOCAL_PORT=0 \
        BILLSTACK_PORT="$api_port" STRIPE_EMULATOR_PORT="$stripe_port" BILLSTACK_ISSUER_PORT="$issuer_port" \
        RUST_LOG="${LOCALAPI_RUST_LOG:-warn}" \
        "$LOCALAPI_BIN" <"/dev/null" >"$CONTRACT_RUN/local.out" 2>"$CONTRACT_RUN/local.log"
    ) &
    LOCALAPI_PID=$!
    contract_log "starting the local API (pid $LOCALAPI_PID) on 127.0.0.1:$api_port"
    started=$SECONDS
    waited=0
    while ! grep -q "listening on" "$CONTRACT_RUN/local.out" 2>/dev/null; do
      if ! kill -0 "$LOCALAPI_PID" 2>/dev/null; then
        break
      fi
      if [ "$waited" -ge "$((timeout * 2))" ]; then
        contract_die "the local API did not start within ${timeout}s; its log: $(tail -5 "$CONTRACT_RUN/local.log")"
      fi
      sleep 0.5
      waited=$((waited + 1))
    done
    if grep -q "listening on" "$CONTRACT_RUN/local.out"; then
      break
    fi
    wait "$LOCALAPI_PID" 2>/dev/null || true
    LOCALAPI_PID=""
    # A port taken between our pick and its bind: pick again.
    if grep -q "cannot listen\|Address already in use\|address in use" "$CONTRACT_RUN/local.log" && [ "$attempt" -lt 3 ]; then
      contract_log "a port was taken meanwhile; trying other ports"
      continue
    fi
    contract_die "the local API exited; its log: $(tail -20 "$CONTRACT_RUN/local.log")"
  done
  contract_python banner "$CONTRACT_RUN/local.out" "$CONTRACT_RUN/local.env"
  # shellcheck disable=SC1091
  source "$CONTRACT_RUN/local.env"
  export LOCALAPI_URL BILLSTACK_TEAM_ID BILLSTACK_PROJECT_ID BILLSTACK_API_KEY BILLSTACK_SESSION_TOKEN
  contract_log "local API at $LOCALAPI_URL: team $BILLSTACK_TEAM_ID, project $BILLSTACK_PROJECT_ID (up in $((SECONDS - started)) s)"
}

localapi_stop() {
  local pid="${LOCALAPI_PID:-}"
  [ -n "$pid" ] || return 0
  LOCALAPI_PID=""
  kill -0 "$pid" 2>/dev/null || return 0
  # Ctrl-C is its stop signal: it stops DynamoDB Local, moto and the emulator with it.
  kill -INT "$pid" 2>/dev/null || true
  for _ in $(seq 40); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.25
  done
  if kill -0 "$pid" 2>/dev/null; then
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

localapi_seed() {
  contract_python seed "$CONTRACT_RUN"
  # shellcheck disable=SC1091
  source "$CONTRACT_RUN/seed.env"
  export BILLSTACK_CUSTOMER_ID BILLSTACK_CUSTOMER_ID_SPARE BILLSTACK_PRODUCT_ID \
    BILLSTACK_PRODUCT_ID_SPARE BILLSTACK_PRICE_ID BILLSTACK_PRICE_ID_SPARE \
    BILLSTACK_KEY_ID BILLSTACK_KEY_ID_SPARE BILLSTACK_USER_ID_SPARE BILLSTACK_USER_ID_DOOMED
}
