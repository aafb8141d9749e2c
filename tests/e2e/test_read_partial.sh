#!/usr/bin/env bash
# Random reads of a cold large object fetch about what they read (not the whole object, not
# whole 8 MiB chunks); a sequential reader then gets all of it, verified, and it stays cached.
source "$(dirname "$0")/lib.sh" "$1"
start_server
make_bucket partial
head -c $((96 << 20)) /dev/urandom > "$E2E_TMP/big"
awsq s3 cp --quiet "$E2E_TMP/big" s3://partial/big

# 24 random 1 MiB reads at 4 KiB-aligned offsets, each compared with the same bytes of the
# local copy; prints the bytes read.
random_reads() {
  python3 - "$1" "$E2E_TMP/big" <<'PY'
import os, random, sys
random.seed(42)
fd, ref = os.open(sys.argv[1], os.O_RDONLY), os.open(sys.argv[2], os.O_RDONLY)
size, total = os.fstat(ref).st_size, 0
for _ in range(24):
    off = random.randrange(0, (size - (1 << 20)) // 4096) * 4096
    got = b""
    while len(got) < 1 << 20:
        b = os.pread(fd, (1 << 20) - len(got), off + len(got))
        if not b:
            break
        got += b
    if got != os.pread(ref, 1 << 20, off):
        sys.exit(f"wrong bytes at offset {off}")
    total += len(got)
print(total)
PY
}

mount_fs m1 partial
read_bytes=$(random_reads "$MNT/big") || fail "random reads through the mount"
unmount_fs "$MNT" "$MNT_PID"
received=$(stat_counter "$E2E_TMP/m1.log" bytes_received)
log "random reads: $read_bytes bytes read, $received bytes fetched"
check "fetched at most 2x the bytes read (got $received for $read_bytes)" \
  test "$received" -le $((2 * read_bytes))
check_eq "nothing kept of a partly read object" 0 "$(find "$E2E_TMP/m1.cache/objects" -type f | wc -l)"

# A sequential reader: all of it, right, fetched once, and kept. The mount's read-ahead is the
# 1 MiB of -o read_ahead's default (the kernel's own default is 128 KiB); tests run as root.
mount_fs m2 partial
check_eq "the mount's read-ahead is 1 MiB" 1024 "$(cat "/sys/class/bdi/$(mountpoint -d "$MNT")/read_ahead_kb")"
check_eq "sequential read gets the right bytes" "$(sha < "$E2E_TMP/big")" "$(sha < "$MNT/big")"
unmount_fs "$MNT" "$MNT_PID"
check_eq "the sequential read fetched the object once" $((96 << 20)) \
  "$(stat_counter "$E2E_TMP/m2.log" bytes_received)"
mount_fs m3 partial "cache_dir=$E2E_TMP/m2.cache"
random_reads "$MNT/big" >/dev/null || fail "random reads of the cached copy"
unmount_fs "$MNT" "$MNT_PID"
check_eq "the cached copy serves random reads without fetching" 0 \
  "$(stat_counter "$E2E_TMP/m3.log" bytes_received)"
log "PASS"
