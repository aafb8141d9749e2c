# tests/e2e/lib.sh — shared harness for the end-to-end tests (sourced, not run).
#
# Each test gets its own temp dir, its own s3rver on a free loopback port, its own mount points
# and cache dirs, and cleans all of it up on exit: it unmounts what it mounted and stops only the
# processes it started (by PID). Objects are seeded and checked with awscli (scripts/awscli.sh),
# never only through the mount.
#
# Usage in a test:   source "$(dirname "$0")/lib.sh" "$1"     ($1 = path of the s3cachefs binary)
set -euo pipefail

E2E_BIN="$(realpath "${1:?usage: test.sh PATH_TO_s3cachefs}")"
E2E_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
E2E_TMP="$(mktemp -d /tmp/s3cachefs-e2e.XXXXXX)"
E2E_MOUNTS=()
E2E_PIDS=()
E2E_AFTER=()  # commands run at cleanup once the mounts and daemons are gone
E2E_FAILED=0
export PATH="$E2E_REPO/scripts:$PATH"

e2e_cleanup() {
  local rc=$?
  local m p
  for m in "${E2E_MOUNTS[@]}"; do
    if mountpoint -q "$m" 2>/dev/null; then fusermount3 -u "$m" 2>/dev/null || fusermount3 -uz "$m" || true; fi
  done
  for p in "${E2E_PIDS[@]}"; do
    if kill -0 "$p" 2>/dev/null; then
      kill "$p" 2>/dev/null || true
      for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$p" 2>/dev/null || true
    fi
  done
  for m in "${E2E_AFTER[@]}"; do eval "$m" || true; done
  "$E2E_REPO/scripts/s3rver.sh" stop "$E2E_TMP/s3" >/dev/null 2>&1 || true
  if [[ $rc -ne 0 || $E2E_FAILED -ne 0 ]]; then
    echo "---- logs of the failed test ($E2E_TMP) ----" >&2
    for f in "$E2E_TMP"/*.log; do [[ -f $f ]] && { echo "== $f" >&2; tail -40 "$f" >&2; }; done
  fi
  rm -rf "$E2E_TMP"
  exit $rc
}
trap e2e_cleanup EXIT

log() { echo "[$(date +%T)] $*" >&2; }
fail() { echo "FAIL: $*" >&2; E2E_FAILED=1; exit 1; }
check() {  # check "description" command...: fails the test when the command fails
  local what=$1; shift
  if "$@"; then log "ok: $what"; else fail "$what"; fi
}
check_eq() {  # check_eq "description" expected actual
  if [[ "$2" == "$3" ]]; then log "ok: $1"; else fail "$1: expected '$2', got '$3'"; fi
}

# expect_fail "what" "message regex" ARGS...: `s3cachefs ARGS...` must exit non-zero, with a
# message matching the regex, and leave nothing mounted at $E2E_TMP/mp (the mountpoint the tests
# give the mounts that must fail; made here).
expect_fail() {
  local what=$1 pattern=$2 out rc=0
  shift 2
  mkdir -p "$E2E_TMP/mp"
  out=$(timeout 60 "$E2E_BIN" "$@" 2>&1) || rc=$?
  if [[ $rc -eq 0 ]]; then
    fusermount3 -u "$E2E_TMP/mp" 2>/dev/null || true
    fail "$what: exited 0"
  fi
  [[ "$out" =~ $pattern ]] || fail "$what: message '$out' does not match /$pattern/"
  mountpoint -q "$E2E_TMP/mp" && fail "$what: left a mount behind"
  log "ok: $what -> $out"
}

# Starts the private s3rver and exports AWS_* for awscli and for s3cachefs. start_server --tls
# serves https with a CA of its own, exported as AWS_CA_BUNDLE.
start_server() {
  mkdir -p "$E2E_TMP/s3"
  "$E2E_REPO/scripts/s3rver.sh" start "$E2E_TMP/s3" "$@" >/dev/null
  eval "$("$E2E_REPO/scripts/s3rver.sh" env "$E2E_TMP/s3")"
  E2E_ENDPOINT="$AWS_ENDPOINT_URL"
  log "s3rver at $E2E_ENDPOINT"
}
stop_server() { "$E2E_REPO/scripts/s3rver.sh" stop "$E2E_TMP/s3" >/dev/null; }
restart_server() {  # same data dir, same port (mounts keep talking to it)
  local tls=()
  [[ "$E2E_ENDPOINT" != https://* ]] || tls=(--tls)
  S3RVER_PORT="${E2E_ENDPOINT##*:}" "$E2E_REPO/scripts/s3rver.sh" start "$E2E_TMP/s3" "${tls[@]}" >/dev/null
  eval "$("$E2E_REPO/scripts/s3rver.sh" env "$E2E_TMP/s3")"
  E2E_ENDPOINT="$AWS_ENDPOINT_URL"
}

awsq() { awscli.sh "$@"; }
make_bucket() { awsq s3api create-bucket --bucket "$1" >/dev/null; }

# mount_fs NAME SOURCE [extra -o options]: mounts SOURCE (bucket[:prefix]) at $E2E_TMP/NAME in
# the foreground in the background, with its own cache dir ($E2E_TMP/NAME.cache unless the
# options name one) and log ($E2E_TMP/NAME.log). Sets MNT and MNT_PID.
mount_fs() {
  local name=$1 source=$2 extra=${3:-}
  MNT="$E2E_TMP/$name"
  mkdir -p "$MNT"
  local opts="endpoint=$E2E_ENDPOINT,log_file=$E2E_TMP/$name.log"
  [[ "$extra" == *cache_dir=* ]] || opts+=",cache_dir=$E2E_TMP/$name.cache"
  [[ -n "$extra" ]] && opts+=",$extra"
  "$E2E_BIN" "$source" "$MNT" -f -o "$opts" 2>>"$E2E_TMP/$name.stderr.log" &
  MNT_PID=$!
  E2E_MOUNTS+=("$MNT")
  E2E_PIDS+=("$MNT_PID")
  for _ in $(seq 100); do
    mountpoint -q "$MNT" && return 0
    kill -0 "$MNT_PID" 2>/dev/null || fail "s3cachefs exited during mount: $(cat "$E2E_TMP/$name.stderr.log")"
    sleep 0.1
  done
  fail "mount of $source at $MNT did not come up"
}

# unmount_fs DIR PID: unmounts and waits for that daemon to exit.
unmount_fs() {
  local dir=$1 pid=$2
  fusermount3 -u "$dir"
  for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  fail "s3cachefs (pid $pid) did not exit after unmount"
}

# The last value of counter NAME in the stats line a daemon logs when it exits.
stat_counter() {  # stat_counter LOGFILE NAME
  grep -o "stats: .*" "$1" | tail -1 | tr ' ' '\n' | sed -n "s/^$2=//p"
}

sha() { sha256sum | cut -d' ' -f1; }

# "sha256  key" lines for every object under s3://BUCKET/PREFIX except directory markers,
# fetched with awscli (one sync, not a request per key), sorted by key.
s3_sums() {  # s3_sums BUCKET [PREFIX]
  local bucket=$1 prefix=${2:-} dir
  dir=$(mktemp -d "$E2E_TMP/s3sums.XXXXXX")
  awsq s3 sync --quiet "s3://$bucket/$prefix" "$dir" >/dev/null
  (cd "$dir" && find . -type f -printf '%P\0' | sort -z | xargs -0r sha256sum)
  rm -rf "$dir"
}
# The keys S3 holds under PREFIX (markers included), one per line, sorted.
s3_keys() {  # s3_keys BUCKET [PREFIX]
  awsq s3api list-objects-v2 --bucket "$1" --prefix "${2:-}" --query 'Contents[].Key' --output text |
    tr '\t' '\n' | grep -v '^None$' | sort || true
}
# The same lines for the files of a local tree.
local_sums() { (cd "$1" && find . -type f -printf '%P\0' | sort -z | xargs -0r sha256sum); }

# Waits until COMMAND succeeds, up to SECONDS.
wait_for() {  # wait_for SECONDS COMMAND...
  local deadline=$((SECONDS + $1)); shift
  until "$@"; do
    ((SECONDS < deadline)) || return 1
    sleep 0.5
  done
}
