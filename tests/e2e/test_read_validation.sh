#!/usr/bin/env bash
# ETag validation and the persistent cache:
# - an object overwritten with awscli shows its new content after the revalidation window;
# - one deleted with awscli disappears;
# - after a remount, reading everything again downloads no object bodies.
source "$(dirname "$0")/lib.sh" "$1"
start_server
make_bucket val

mkdir -p "$E2E_TMP/src/d"
for i in $(seq 1 20); do head -c $((i * 1000)) /dev/urandom > "$E2E_TMP/src/d/f$i"; done
head -c $((20 << 20)) /dev/urandom > "$E2E_TMP/src/large"
awsq s3 cp --recursive --quiet "$E2E_TMP/src" s3://val/

OPTS="revalidate=2,stat_ttl=1,dir_ttl=1,negative_ttl=1,cache_dir=$E2E_TMP/cache"
mount_fs m val "$OPTS"
for f in d/f1 d/f2 large; do
  check_eq "first read of $f" "$(sha < "$E2E_TMP/src/$f")" "$(sha < "$MNT/$f")"
done

echo "version 2" > "$E2E_TMP/v2"
awsq s3 cp --quiet "$E2E_TMP/v2" s3://val/d/f1
awsq s3 rm --quiet s3://val/d/f2
sleep 3
check_eq "overwritten object shows its new content" "version 2" "$(cat "$MNT/d/f1")"
check_eq "new size is reported" "10" "$(stat -c %s "$MNT/d/f1")"
check "deleted object disappears" test ! -e "$MNT/d/f2"
check "deleted object is not listed" bash -c "! ls '$MNT/d' | grep -qx f2"
unmount_fs "$MNT" "$MNT_PID"

# Read everything once so that all of it is cached, then remount and read it again.
cp "$E2E_TMP/v2" "$E2E_TMP/src/d/f1" && rm "$E2E_TMP/src/d/f2"
mount_fs m val "$OPTS"
diff -r "$E2E_TMP/src" "$MNT" || fail "tree differs before the remount"
unmount_fs "$MNT" "$MNT_PID"
before=$(stat_counter "$E2E_TMP/m.log" bytes_received)

mount_fs m val "$OPTS"
check "tree reads back after a remount" diff -r "$E2E_TMP/src" "$MNT"
unmount_fs "$MNT" "$MNT_PID"
check_eq "after the remount no object body was downloaded (bytes)" 0 "$(stat_counter "$E2E_TMP/m.log" bytes_received)"
check_eq "after the remount no download was started" 0 "$(stat_counter "$E2E_TMP/m.log" downloads)"
log "bytes received before the remount: $before"
log "PASS"
