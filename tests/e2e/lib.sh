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

# Starts the private s3rver and exports AWS_* for awscli and for s3cachefs.
start_server() {
  mkdir -p "$E2E_TMP/s3"
  "$E2E_REPO/scripts/s3rver.sh" start "$E2E_TMP/s3" >/dev/null
  eval "$("$E2E_REPO/scripts/s3rver.sh" env "$E2E_TMP/s3")"
  E2E_ENDPOINT="$AWS_ENDPOINT_URL"
  log "s3rver at $E2E_ENDPOINT"
}
stop_server() { "$E2E_REPO/scripts/s3rver.sh" stop "$E2E_TMP/s3" >/dev/null; }
restart_server() {  # same data dir, same port if it is still free
  "$E2E_REPO/scripts/s3rver.sh" start "$E2E_TMP/s3" >/dev/null
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
