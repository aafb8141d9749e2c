#!/usr/bin/env bash
# The cache disk filling up: write returns ENOSPC, and nothing already written is lost or
# corrupted (neither in the cache nor in S3). The cache lives on a 32 MiB tmpfs (needs root).
source "$(dirname "$0")/lib.sh" "$1"
if [[ $(id -u) -ne 0 ]]; then echo "SKIP: needs root for a tmpfs"; exit 0; fi
start_server
make_bucket nospace
SMALL="$E2E_TMP/small"
mkdir -p "$SMALL"
mount -t tmpfs -o size=40m tmpfs "$SMALL"
E2E_AFTER+=("umount '$SMALL'")

mount_fs m nospace "cache_dir=$SMALL/cache,cache_min_free=0"
head -c $((8 << 20)) /dev/urandom > "$E2E_TMP/keep.bin"
cp "$E2E_TMP/keep.bin" "$MNT/keep.bin"
echo "line 1" > "$MNT/log.txt"
rc=0
head -c $((64 << 20)) /dev/urandom > "$MNT/huge.bin" 2>"$E2E_TMP/dd.err" || rc=$?
[[ $rc -ne 0 ]] || fail "writing 64 MiB into a 32 MiB cache succeeded"
check "the error is ENOSPC" grep -qi "no space left" "$E2E_TMP/dd.err"
rm -f "$MNT/huge.bin"
check_eq "the file written before is intact in the mount" "$(sha < "$E2E_TMP/keep.bin")" "$(sha < "$MNT/keep.bin")"
check_eq "and in S3" "$(sha < "$E2E_TMP/keep.bin")" "$(awsq s3 cp s3://nospace/keep.bin - | sha)"
echo "line 2" >> "$MNT/log.txt"
check_eq "writing works again once space is free" "line 1
line 2" "$(awsq s3 cp s3://nospace/log.txt -)"
unmount_fs "$MNT" "$MNT_PID"
log "PASS"
