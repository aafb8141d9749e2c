#!/usr/bin/env bash
# FUSE passthrough (fs/passthrough.h): once an object is wholly in the cache, the kernel reads it
# straight from the cache file — proven by reading it while the daemon is stopped, with the page
# cache dropped. Reads of an object not wholly cached yet are direct opens (no kernel page
# cache; a shared mmap still works), unless -o cold_direct=0. Writers join passthrough readers
# (an appending one writes the shared file, a truncating one cuts it in place; their bytes reach
# S3); a reader of a newer version gets a new inode, as after a rename over an open file;
# -o passthrough=0 turns it off.
source "$(dirname "$0")/lib.sh" "$1"
if ! grep -q '^CONFIG_FUSE_PASSTHROUGH=y' <(zcat /proc/config.gz 2>/dev/null) &&
  ! grep -qs '^CONFIG_FUSE_PASSTHROUGH=y' "/boot/config-$(uname -r)"; then
  log "SKIP: this kernel has no FUSE passthrough"
  exit 0
fi
start_server
make_bucket passthru
head -c $((24 << 20)) /dev/urandom > "$E2E_TMP/data"
head -c $((100 << 10)) /dev/urandom > "$E2E_TMP/small"
awsq s3 cp --quiet "$E2E_TMP/data" s3://passthru/data
awsq s3 cp --quiet "$E2E_TMP/small" s3://passthru/small
awsq s3 cp --quiet "$E2E_TMP/small" s3://passthru/mapped

# stopped_read FILE PID: opens FILE, stops the daemon PID, drops the page cache and prints the
# sha256 of FILE read through that descriptor; the daemon is continued before the close (which
# the daemon answers) and whatever happens. Only the kernel can answer those reads: through the
# daemon they would hang (killed after 30 s).
stopped_read() {
  local out rc=0
  out=$(timeout -s KILL 30 python3 - "$1" "$2" <<'PY'
import hashlib, os, signal, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
pid = int(sys.argv[2])
os.kill(pid, signal.SIGSTOP)
try:
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("1")
    h = hashlib.sha256()
    while True:
        b = os.read(fd, 1 << 20)
        if not b:
            break
        h.update(b)
finally:
    os.kill(pid, signal.SIGCONT)
os.close(fd)
print(h.hexdigest())
PY
  ) || rc=$?
  kill -CONT "$2"
  [[ $rc -eq 0 ]] || return $rc
  echo "$out"
}

mount_fs m1 passthru "revalidate=0"
want=$(sha < "$E2E_TMP/data")
check_eq "cold read (download) gets the object" "$want" "$(sha < "$MNT/data")"
check_eq "a cached object is read with the daemon stopped" "$want" "$(stopped_read "$MNT/data" "$MNT_PID")"
# mapped_sha FILE: sha256 of FILE read through a shared mapping.
mapped_sha() {
  python3 -c '
import hashlib, mmap, sys
with open(sys.argv[1], "rb") as f, mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ) as m:
    print(hashlib.sha256(m).hexdigest())' "$1"
}
check_eq "mmap of a passthrough file" "$want" "$(mapped_sha "$MNT/data")"
check_eq "mmap (shared) of a cold file, a direct open" "$(sha < "$E2E_TMP/small")" "$(mapped_sha "$MNT/mapped")"
check_eq "the mapped file, cached, read with the daemon stopped" "$(sha < "$E2E_TMP/small")" \
  "$(stopped_read "$MNT/mapped" "$MNT_PID")"

# An appending writer next to a passthrough reader of the same cached file joins it: the
# kernel writes the file itself, S3 gets it at close, and the reader sees the new bytes (one
# file).
small_sha=$(sha < "$E2E_TMP/small")
check_eq "small, cold" "$small_sha" "$(sha < "$MNT/small")"
exec 3<"$MNT/small"  # cached now: passthrough
echo "appended" >>"$MNT/small" || fail "append next to a passthrough reader"
{ cat "$E2E_TMP/small"; echo "appended"; } > "$E2E_TMP/small2"
check_eq "S3 has the appended file" "$(sha < "$E2E_TMP/small2")" \
  "$(awsq s3 cp --quiet s3://passthru/small - | sha)"
check_eq "the passthrough reader sees the appended bytes" "$(sha < "$E2E_TMP/small2")" "$(sha <&3)"
# A truncating writer joins as well: it cuts the shared file in place, as O_TRUNC does to a
# local file that is being read, so the reader sees the new content and S3 gets it at close.
echo "replaced" >"$MNT/small" || fail "a truncating writer next to a passthrough reader"
check_eq "S3 has the replaced file" "$(echo replaced | sha)" \
  "$(awsq s3 cp --quiet s3://passthru/small - | sha)"
check_eq "the passthrough reader sees the replaced file" "$(echo replaced | sha)" \
  "$(python3 -c 'import os, sys; sys.stdout.buffer.write(os.pread(3, 1 << 20, 0))' | sha)"
exec 3<&-
echo "appended" >>"$MNT/small"
printf 'replaced\nappended\n' > "$E2E_TMP/small2"
exec 4>>"$MNT/small"
check_eq "a reader next to an open writer (no passthrough)" "$(sha < "$E2E_TMP/small2")" \
  "$(sha < "$MNT/small")"
exec 4>&-
check_eq "the appended file, cached, read with the daemon stopped" "$(sha < "$E2E_TMP/small2")" \
  "$(stopped_read "$MNT/small" "$MNT_PID")"

# A newer version in S3 while the old one is open through passthrough (revalidate=0 asks S3 at
# every open): the kernel takes no other file for that inode, so the name gets a new inode
# (ESTALE, and the kernel looks it up again), as after a rename over an open file; the old
# reader keeps reading the old version.
exec 5<"$MNT/data"
old_ino=$(stat -c %i "$MNT/data")
head -c $((24 << 20)) /dev/urandom > "$E2E_TMP/data2"
awsq s3 cp --quiet "$E2E_TMP/data2" s3://passthru/data
new_sha=$(sha < "$E2E_TMP/data2")
check_eq "a newer version opened next to a passthrough reader of the old one" "$new_sha" \
  "$(sha < "$MNT/data")"
check "the newer version has a new inode" test "$(stat -c %i "$MNT/data")" != "$old_ino"
exec 6<"$MNT/data"
check_eq "the old reader still reads the old version" "$want" "$(sha <&5)"
check_eq "a second reader of the newer version" "$new_sha" "$(sha <&6)"
exec 5<&- 6<&-
check_eq "the new version once the old reader is closed" "$new_sha" "$(sha < "$MNT/data")"
check_eq "new version from the cache, daemon stopped" "$(sha < "$E2E_TMP/data2")" \
  "$(stopped_read "$MNT/data" "$MNT_PID")"
unmount_fs "$MNT" "$MNT_PID"
grep -q "FUSE passthrough on" "$E2E_TMP/m1.log" || fail "the daemon did not log that passthrough is on"
check "the daemon logged the new inode for the newer version" \
  grep -q "open data: its older version is open through passthrough: a new inode" "$E2E_TMP/m1.log"
opens=$(stat_counter "$E2E_TMP/m1.log" passthrough_opens)
check "passthrough opens counted (got $opens)" test "$opens" -ge 5
direct=$(stat_counter "$E2E_TMP/m1.log" direct_opens)
check "direct opens counted: the cold reads of data and mapped (got $direct)" test "$direct" -ge 2

mount_fs m3 passthru "cold_direct=0"
check_eq "cold_direct=0: cold read" "$(sha < "$E2E_TMP/small")" "$(sha < "$MNT/mapped")"
unmount_fs "$MNT" "$MNT_PID"
check_eq "cold_direct=0: no direct open" 0 "$(stat_counter "$E2E_TMP/m3.log" direct_opens)"

mount_fs m2 passthru "passthrough=0,cache_dir=$E2E_TMP/m1.cache"
check_eq "passthrough=0 still reads the cached object" "$(sha < "$E2E_TMP/data2")" "$(sha < "$MNT/data")"
unmount_fs "$MNT" "$MNT_PID"
check_eq "passthrough=0: no passthrough open" 0 "$(stat_counter "$E2E_TMP/m2.log" passthrough_opens)"
log "PASS"
