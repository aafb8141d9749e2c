#!/usr/bin/env bash
# The transfer options shape the requests S3 sees: get_size and parallel_gets the ranged GETs of
# a cold read, multipart_threshold and part_size the parts of an upload (awscli sees the part
# count in the ETag); bytes come out right either way, and a value S3 cannot take is refused
# before anything is mounted.
source "$(dirname "$0")/lib.sh" "$1"
start_server
make_bucket xfer
head -c $((20 << 20)) /dev/urandom > "$E2E_TMP/big"
awsq s3 cp --quiet "$E2E_TMP/big" s3://xfer/big
awsq s3 cp --quiet "$E2E_TMP/big" s3://xfer/big2

mount_fs m1 xfer "get_size=1M,parallel_gets=2,multipart_threshold=5M,part_size=5M,parallel_parts=2"
check "the log states the transfer settings" grep -q \
  "transfers: get_size=1024K parallel_gets=2 multipart_threshold=5120K part_size=5120K parallel_parts=2" \
  "$E2E_TMP/m1.log"
check_eq "a cold read in 1 MiB GETs gets the right bytes" "$(sha < "$E2E_TMP/big")" "$(sha < "$MNT/big")"
head -c $((12 << 20)) /dev/urandom > "$E2E_TMP/twelve"
head -c $((4 << 20)) /dev/urandom > "$E2E_TMP/four"
cp "$E2E_TMP/twelve" "$MNT/twelve" || fail "cp of 12 MiB"
cp "$E2E_TMP/four" "$MNT/four" || fail "cp of 4 MiB"
unmount_fs "$MNT" "$MNT_PID"
gets=$(stat_counter "$E2E_TMP/m1.log" get_requests)
check "20 MiB read cold in GETs of at most 1 MiB (got $gets GETs)" test "$gets" -ge 20
check_eq "and fetched once" $((20 << 20)) "$(stat_counter "$E2E_TMP/m1.log" bytes_received)"

etag() { awsq s3api head-object --bucket xfer --key "$1" --query ETag --output text | tr -d '"'; }
check "12 MiB went up in three parts of 5 MiB (ETag $(etag twelve))" \
  bash -c "[[ '$(etag twelve)' == *-3 ]]"
check "4 MiB went up in one PUT (ETag $(etag four))" bash -c "[[ '$(etag four)' != *-* ]]"
check_eq "S3 holds the 12 MiB file" "$(sha < "$E2E_TMP/twelve")" "$(awsq s3 cp s3://xfer/twelve - | sha)"
check_eq "S3 holds the 4 MiB file" "$(sha < "$E2E_TMP/four")" "$(awsq s3 cp s3://xfer/four - | sha)"

# The defaults, for comparison: fewer, larger GETs for the same read.
mount_fs m2 xfer
check_eq "a cold read with the defaults gets the right bytes" "$(sha < "$E2E_TMP/big")" "$(sha < "$MNT/big2")"
unmount_fs "$MNT" "$MNT_PID"
default_gets=$(stat_counter "$E2E_TMP/m2.log" get_requests)
check "the defaults send fewer GETs ($default_gets) than get_size=1M ($gets)" test "$default_gets" -lt "$gets"

mkdir -p "$E2E_TMP/m3"
if out=$("$E2E_BIN" xfer "$E2E_TMP/m3" -o "endpoint=$E2E_ENDPOINT,part_size=1M" 2>&1); then
  fail "part_size=1M was accepted"
fi
check "part_size=1M is refused with S3's limits (got: $out)" \
  bash -c "[[ '$out' == *'part_size must be a size from 5M to 5G'* ]]"
check "nothing was mounted" bash -c "! mountpoint -q '$E2E_TMP/m3'"
log "PASS"
