#!/usr/bin/env bash
# scripts/quickstart.sh — from a fresh Debian 12 machine (as root) to a mounted sample bucket:
# installs what is needed, builds and installs s3cachefs, starts a local S3 server (s3rver) on
# loopback, fills the bucket "sample" with the files in scripts/sample/ plus a 64 MiB file, and
# mounts it on /mnt/s3cachefs-sample. Run it again to remount; `scripts/quickstart.sh stop`
# unmounts and stops the server.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="${S3CACHEFS_QUICKSTART_DIR:-/var/tmp/s3cachefs-quickstart}"
MNT="${S3CACHEFS_QUICKSTART_MNT:-/mnt/s3cachefs-sample}"

if [[ "${1:-}" == "stop" ]]; then
  mountpoint -q "$MNT" && fusermount3 -u "$MNT"
  "$REPO/scripts/s3rver.sh" stop "$STATE/s3"
  echo "stopped"
  exit 0
fi

"$REPO/scripts/setup.sh"
"$REPO/scripts/build.sh" "$REPO/build"
cmake --install "$REPO/build" --prefix /usr/local >/dev/null
mkdir -p "$STATE/s3" "$MNT"
"$REPO/scripts/s3rver.sh" start "$STATE/s3" --bucket sample >/dev/null
eval "$("$REPO/scripts/s3rver.sh" env "$STATE/s3")"

if ! "$REPO/scripts/awscli.sh" s3api head-object --bucket sample --key README.txt >/dev/null 2>&1; then
  "$REPO/scripts/awscli.sh" s3 cp --recursive --quiet "$REPO/scripts/sample" s3://sample/
  head -c $((64 << 20)) /dev/urandom > "$STATE/random-64MiB.bin"
  "$REPO/scripts/awscli.sh" s3 cp --quiet "$STATE/random-64MiB.bin" s3://sample/data/random-64MiB.bin
fi

mountpoint -q "$MNT" && fusermount3 -u "$MNT"
s3cachefs sample "$MNT" -o "endpoint=$AWS_ENDPOINT_URL,cache_dir=$STATE/cache,log_file=$STATE/s3cachefs.log"
cat <<MSG

The bucket "sample" on $AWS_ENDPOINT_URL is mounted on $MNT:
$(cd "$MNT" && find . -maxdepth 2 | sort | sed 's/^/  /')

Try:   cat $MNT/README.txt;  time cat $MNT/data/random-64MiB.bin > /dev/null  (twice)
Log:   $STATE/s3cachefs.log      Cache: $STATE/cache
Stop:  $REPO/scripts/quickstart.sh stop
MSG
