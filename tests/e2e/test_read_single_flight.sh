#!/usr/bin/env bash
# 8 parallel readers of one cold 100 MiB object cause exactly one download.
source "$(dirname "$0")/lib.sh" "$1"
start_server
make_bucket sflight
head -c $((100 << 20)) /dev/urandom > "$E2E_TMP/big"
want=$(sha < "$E2E_TMP/big")
awsq s3 cp --quiet "$E2E_TMP/big" s3://sflight/big

mount_fs m sflight
ls -l "$MNT/big" >/dev/null
pids=()
for i in $(seq 8); do
  (sha < "$MNT/big" > "$E2E_TMP/sum.$i") &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
for i in $(seq 8); do check_eq "reader $i got the right bytes" "$want" "$(cat "$E2E_TMP/sum.$i")"; done
unmount_fs "$MNT" "$MNT_PID"
check_eq "exactly one download" 1 "$(stat_counter "$E2E_TMP/m.log" downloads)"
check_eq "the body crossed the network once" $((100 << 20)) "$(stat_counter "$E2E_TMP/m.log" bytes_received)"
log "PASS"
