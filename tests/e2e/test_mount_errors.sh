#!/usr/bin/env bash
# Problems found before daemonizing print one clear line, exit non-zero and leave nothing
# mounted: unknown bucket, unknown access key, unreachable endpoint, missing mountpoint, a
# mountpoint that is a file, a cache dir in use by another daemon, bad options. The daemon
# mode (no -f) returns once the mount is up.
source "$(dirname "$0")/lib.sh" "$1"
start_server
make_bucket okbucket
mkdir -p "$E2E_TMP/mp"

base="endpoint=$E2E_ENDPOINT,cache_dir=$E2E_TMP/cache"
expect_fail "unknown bucket" "bucket.*nosuch.*(not exist|no such)|nosuch.*does not exist" nosuch "$E2E_TMP/mp" -o "$base"
AWS_ACCESS_KEY_ID=WRONGKEY expect_fail "unknown access key" "[Aa]ccess key|credentials" okbucket "$E2E_TMP/mp" -o "$base"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
expect_fail "unreachable endpoint" "reach|connect|refused" okbucket "$E2E_TMP/mp" -o "endpoint=http://127.0.0.1:$port,cache_dir=$E2E_TMP/cache"
expect_fail "missing mountpoint" "mountpoint.*(No such|does not exist)" okbucket "$E2E_TMP/nope" -o "$base"
touch "$E2E_TMP/afile"
expect_fail "mountpoint is a file" "not a directory" okbucket "$E2E_TMP/afile" -o "$base"
expect_fail "bad option value" "revalidate" okbucket "$E2E_TMP/mp" -o "$base,revalidate=soon"
expect_fail "unknown FUSE option" "" okbucket "$E2E_TMP/mp" -o "$base,no_such_option_xyz"

# Daemon mode: returns after the mount is up; the second daemon on the same cache dir fails.
"$E2E_BIN" okbucket "$E2E_TMP/mp" -o "$base,log_file=$E2E_TMP/daemon.log"
E2E_MOUNTS+=("$E2E_TMP/mp")
check "daemon mode returned with the mount up" mountpoint -q "$E2E_TMP/mp"
check_eq "the mount is listed as fuse.s3cachefs" "fuse.s3cachefs" "$(findmnt -n -o FSTYPE "$E2E_TMP/mp")"
mkdir -p "$E2E_TMP/mp2"
out=$("$E2E_BIN" okbucket "$E2E_TMP/mp2" -o "$base" 2>&1) && fail "second daemon on the same cache dir started"
[[ "$out" =~ "in use" ]] || fail "second daemon: unclear message: $out"
log "ok: second daemon on the same cache dir -> $out"
mountpoint -q "$E2E_TMP/mp2" && fail "second daemon left a mount"
fusermount3 -u "$E2E_TMP/mp"
for _ in $(seq 100); do grep -q "unmounted" "$E2E_TMP/daemon.log" && break; sleep 0.1; done
check "daemon exits after unmount" grep -q "unmounted" "$E2E_TMP/daemon.log"
log "PASS"
