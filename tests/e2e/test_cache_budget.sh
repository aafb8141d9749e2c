#!/usr/bin/env bash
# The cache budget through a real mount: with cache_size=50M, reading 200 MiB across 40 files
# leaves at most 50 MiB plus one object in flight, the most recently read files are the ones
# still cached (re-read after drop_caches without body downloads), the same holds after a
# remount, and `s3cachefs cache stats|verify` work on the real directory (verify finds a
# corrupted file).
source "$(dirname "$0")/lib.sh" "$1"
start_server
make_bucket budget
mkdir -p "$E2E_TMP/src"
for i in $(seq -w 1 40); do head -c $((5 << 20)) /dev/urandom > "$E2E_TMP/src/f$i"; done
awsq s3 cp --recursive --quiet "$E2E_TMP/src" s3://budget/
CACHE="$E2E_TMP/cache"
OPTS="cache_dir=$CACHE,cache_size=50M"

cached_bytes() { find "$CACHE/objects" -type f -printf '%s\n' | awk '{s += $1} END {print s + 0}'; }
mount_fs m budget "$OPTS"
max=0
for i in $(seq -w 1 40); do
  [[ "$(sha < "$MNT/f$i")" == "$(sha < "$E2E_TMP/src/f$i")" ]] || fail "f$i read back wrong"
  b=$(cached_bytes); ((b > max)) && max=$b
done
log "largest cache size seen while reading: $max bytes"
check "the cache never held more than 50 MiB + one object" test "$max" -le $(((50 + 5) << 20))
unmount_fs "$MNT" "$MNT_PID"
check "after the reads the cache is within 50 MiB" test "$(cached_bytes)" -le $((50 << 20))

# The 8 most recently read files are still cached: re-reading them downloads nothing.
sync; echo 3 > /proc/sys/vm/drop_caches
mount_fs m budget "$OPTS"
for i in $(seq 33 40); do cat "$MNT/f$i" > /dev/null; done
unmount_fs "$MNT" "$MNT_PID"
check_eq "the most recently read files are served from the cache after a remount" 0 \
  "$(stat_counter "$E2E_TMP/m.log" downloads)"
check "and the budget still holds" test "$(cached_bytes)" -le $((50 << 20))

stats=$("$E2E_BIN" cache stats --cache-dir "$CACHE")
log "cache stats: $(tr '\n' ' ' <<<"$stats")"
check "cache stats reports the entries" grep -qiE "entries" <<<"$stats"
check "cache verify passes on an intact cache" "$E2E_BIN" cache verify --cache-dir "$CACHE"
victim=$(find "$CACHE/objects" -type f | head -1)
printf 'X' | dd of="$victim" bs=1 seek=100 conv=notrunc status=none
out=$("$E2E_BIN" cache verify --cache-dir "$CACHE" 2>&1) && fail "verify missed a corrupted file"
log "ok: verify found the corruption: $(tail -2 <<<"$out" | tr '\n' ' ')"
out=$("$E2E_BIN" cache stats --cache-dir "$E2E_TMP/nope" 2>&1) && fail "stats of a missing dir succeeded"
check "a missing cache dir is named" grep -q "does not exist" <<<"$out"
log "PASS"
