#!/usr/bin/env bash
# mount -t fuse.s3cachefs and an /etc/fstab line (read from a private fstab file with mount -T)
# mount a bucket:prefix like the command line does; umount unmounts. Needs root for mount(8).
if [[ $(id -u) -ne 0 ]]; then echo "SKIP: mount(8) needs root"; exit 0; fi
# mount(8) clears PATH before it runs mount.fuse3, so the binary named by the type is looked up
# only in the standard directories (/usr/local/sbin first). To mount the binary under test, and
# not whatever is installed, the test runs in a private mount namespace where a directory holding
# it is bind-mounted over /usr/local/sbin: nothing outside the test sees the change.
if [[ -z ${S3CACHEFS_E2E_NS:-} ]]; then
  S3CACHEFS_E2E_NS=1 exec unshare --mount --propagation private "$0" "$@"
fi
source "$(dirname "$0")/lib.sh" "$1"
start_server
make_bucket fstab
echo "via fstab" > "$E2E_TMP/x"
awsq s3 cp --quiet "$E2E_TMP/x" s3://fstab/pre/fix/file.txt
mkdir -p "$E2E_TMP/bin" "$E2E_TMP/m1" "$E2E_TMP/m2"
ln -s "$E2E_BIN" "$E2E_TMP/bin/s3cachefs"
mount --bind "$E2E_TMP/bin" /usr/local/sbin
E2E_AFTER+=("umount /usr/local/sbin")

mount -t fuse.s3cachefs fstab:pre "$E2E_TMP/m1" -o "endpoint=$E2E_ENDPOINT,cache_dir=$E2E_TMP/c1,_netdev,nofail"
E2E_MOUNTS+=("$E2E_TMP/m1")
check_eq "mount -t fuse.s3cachefs mounts the prefix" "via fstab" "$(cat "$E2E_TMP/m1/fix/file.txt")"
check_eq "the mount is fuse.s3cachefs" "fuse.s3cachefs" "$(findmnt -n -o FSTYPE "$E2E_TMP/m1")"
umount "$E2E_TMP/m1"
check "umount unmounts" bash -c "! mountpoint -q '$E2E_TMP/m1'"

printf 'fstab:pre/fix  %s  fuse.s3cachefs  _netdev,nofail,x-systemd.automount,endpoint=%s,cache_dir=%s  0  0\n' \
  "$E2E_TMP/m2" "$E2E_ENDPOINT" "$E2E_TMP/c2" > "$E2E_TMP/fstab"
mount -T "$E2E_TMP/fstab" "$E2E_TMP/m2"
E2E_MOUNTS+=("$E2E_TMP/m2")
check_eq "an fstab line mounts" "via fstab" "$(cat "$E2E_TMP/m2/file.txt")"
umount "$E2E_TMP/m2"
log "PASS"
