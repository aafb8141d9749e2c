#!/usr/bin/env bash
# Writing through the mount with ordinary tools (sync write-back): cp of a 300 MiB file, rsync -a
# of 500 small files, appends, an editor-style save, truncate, mkdir, mv of a directory, rm -r.
# The same operations run on a local reference tree; afterwards S3 (read with awscli) must hold
# exactly the reference's files and bytes. Then a second mount sees a change made through the
# first after its revalidation window, with no stale bytes.
source "$(dirname "$0")/lib.sh" "$1"
start_server
make_bucket wtools

SRC="$E2E_TMP/src"
mkdir -p "$SRC/tree"
for d in $(seq 1 10); do
  mkdir -p "$SRC/tree/d$d"
  for f in $(seq 1 50); do head -c $((RANDOM % 4096 + 1)) /dev/urandom > "$SRC/tree/d$d/f$f"; done
done
head -c $((300 << 20)) /dev/urandom > "$SRC/big.bin"

# The same operations on any directory: first the reference, then the mount.
apply_ops() {
  local dir=$1
  cp "$SRC/big.bin" "$dir/big.bin"
  rsync -a "$SRC/tree/" "$dir/tree/"
  echo "line 1" > "$dir/log.txt"
  echo "line 2" >> "$dir/log.txt"
  echo "line 3" >> "$dir/log.txt"
  printf 'version 1\n' > "$dir/doc.txt"
  printf 'version 2, saved by an editor\n' > "$dir/.doc.txt.swp"
  mv "$dir/.doc.txt.swp" "$dir/doc.txt"
  head -c 1000000 /dev/zero | tr '\0' 'x' > "$dir/trunc.txt"
  truncate -s 1000 "$dir/trunc.txt"
  mkdir -p "$dir/old/sub"
  echo "a" > "$dir/old/a.txt"
  echo "b" > "$dir/old/sub/b.txt"
  mv "$dir/old" "$dir/new"
  cp -r "$SRC/tree/d1" "$dir/gone"
  rm -r "$dir/gone"
  mkdir "$dir/emptydir"
}
mkdir "$E2E_TMP/ref"
apply_ops "$E2E_TMP/ref"

mount_fs m wtools "revalidate=1,stat_ttl=1,dir_ttl=1,negative_ttl=1"
start=$(date +%s.%N)
apply_ops "$MNT"
log "operations through the mount took $(echo "$(date +%s.%N) - $start" | bc) s"

check_eq "the mount shows the reference tree" "$(local_sums "$E2E_TMP/ref")" "$(local_sums "$MNT")"
check_eq "S3 holds exactly the reference's files and bytes" "$(local_sums "$E2E_TMP/ref")" "$(s3_sums wtools)"
keys=$(s3_keys wtools)
check "S3 has the directory marker of mkdir" grep -qx "emptydir/" <<<"$keys"
check "nothing is left under the removed tree" bash -c "! grep -q '^gone' <<<'$keys'"
check "nothing is left under the renamed directory" bash -c "! grep -q '^old' <<<'$keys'"
check "the editor's temp file is gone" bash -c "! grep -q 'swp' <<<'$keys'"
check_eq "big.bin is one object of 300 MiB" $((300 << 20)) \
  "$(awsq s3api head-object --bucket wtools --key big.bin --query ContentLength --output text)"
mode=$(awsq s3api head-object --bucket wtools --key tree/d1/f1 --query 'Metadata.mode' --output text)
check_eq "rsync -a's file mode is in x-amz-meta-mode" "$(printf '%d' 0$(stat -c %a "$SRC/tree/d1/f1") )" "$((mode & 07777))"
mtime=$(awsq s3api head-object --bucket wtools --key tree/d1/f1 --query 'Metadata.mtime' --output text)
check_eq "rsync -a's mtime is in x-amz-meta-mtime" "$(stat -c %Y "$SRC/tree/d1/f1")" "$mtime"
check_eq "the mount shows the preserved mtime" "$(stat -c %Y "$SRC/tree/d1/f1")" "$(stat -c %Y "$MNT/tree/d1/f1")"
check "hard links are refused cleanly" bash -c "! ln '$MNT/doc.txt' '$MNT/hardlink' 2>/dev/null"
check "rmdir of a non-empty directory fails" bash -c "! rmdir '$MNT/new' 2>/dev/null"

# A second mount of the same bucket sees a change made through the first.
M1="$MNT"
mount_fs m2 wtools "revalidate=1,stat_ttl=1,dir_ttl=1,negative_ttl=1"
check_eq "second mount reads the file" "version 2, saved by an editor" "$(cat "$MNT/doc.txt")"
printf 'version 3, longer than version 2 was\n' > "$M1/doc.txt"
echo "brand new" > "$M1/fresh.txt"
sleep 2.5
check_eq "second mount sees the new content after the window" "version 3, longer than version 2 was" "$(cat "$MNT/doc.txt")"
check_eq "second mount sees the new file" "brand new" "$(cat "$MNT/fresh.txt")"

# One PUT per file written by a shell's `>`, though bash dup2()s the file onto stdout and closes
# the first descriptor (a FLUSH) before writing: that flush leaves the upload to the last close.
# close still returns only once S3 has the file: awscli checks right after the loop.
mount_fs m3 wtools "revalidate=1,stat_ttl=1,dir_ttl=1,negative_ttl=1"
mkdir "$MNT/shell"
for i in $(seq 1 20); do printf 'shell file %d\n' "$i" > "$MNT/shell/f$i"; done
touch "$MNT/shell/empty"
exec 7>"$MNT/shell/fd7"
echo "through fd 7" >&7
exec 7>&-
mkdir "$E2E_TMP/shell"
for i in $(seq 1 20); do printf 'shell file %d\n' "$i" > "$E2E_TMP/shell/f$i"; done
: > "$E2E_TMP/shell/empty"
echo "through fd 7" > "$E2E_TMP/shell/fd7"
check_eq "S3 has every file written by the shell at once" "$(local_sums "$E2E_TMP/shell")" "$(s3_sums wtools shell/)"
unmount_fs "$MNT" "$MNT_PID"
check_eq "one PUT per file (mkdir's marker, 20 by >, 1 by touch, 1 by exec 7>)" 23 "$(stat_counter "$E2E_TMP/m3.log" put_requests)"
log "PASS"
