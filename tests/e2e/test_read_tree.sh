#!/usr/bin/env bash
# A seeded tree (nested dirs, marker-only dirs, dirs implied by deep keys, 0- and 1-byte files,
# a 100 MiB file, odd names, a file/directory conflict) reads back byte-identical through the
# mount with find, cat | sha256sum, cp -r, grep -r and tar.
source "$(dirname "$0")/lib.sh" "$1"
start_server
make_bucket tree

SRC="$E2E_TMP/src"
mkdir -p "$SRC/a/b/c" "$SRC/deep/x/y" "$SRC/odd names" "$SRC/unicodé/日本"
echo "hello world" > "$SRC/a/hello.txt"
echo "needle in a/b" > "$SRC/a/b/file.txt"
printf 'c' > "$SRC/a/b/c/one-byte"
: > "$SRC/a/empty-file"
echo "deep" > "$SRC/deep/x/y/z.txt"
echo "space" > "$SRC/odd names/with space.txt"
echo "plus" > "$SRC/odd names/a+b=c~d%20e.txt"
echo "bang" > "$SRC/odd names/it's (1) & [2] @ \$x,!.txt"
echo "unicode" > "$SRC/unicodé/日本/ファイル.txt"
head -c $((100 << 20)) /dev/urandom > "$SRC/big.bin"
for i in $(seq 1 30); do echo "file $i needle" > "$SRC/a/b/n$i.txt"; done

awsq s3 cp --recursive --quiet "$SRC" s3://tree/
# A marker-only directory. (Keys that cannot be paths, such as "a//b" or "a/../b", are covered
# by the unit tests against the fake: s3rver itself cannot store them.)
awsq s3api put-object --bucket tree --key "marker-only/" >/dev/null
mkdir -p "$SRC/marker-only"
printf 'x' > "$E2E_TMP/x"
# "a/hello.txt/inner" makes a/hello.txt also a directory: the directory wins.
awsq s3api put-object --bucket tree --key "conflict" --body "$E2E_TMP/x" >/dev/null
awsq s3api put-object --bucket tree --key "conflict/inner" --body "$E2E_TMP/x" >/dev/null
mkdir -p "$SRC/conflict" && printf 'x' > "$SRC/conflict/inner"

mount_fs m tree
expected=$(cd "$SRC" && find . | sort)
actual=$(cd "$MNT" && find . | sort)
check_eq "find lists exactly the seeded tree" "$expected" "$actual"
check "marker-only dir is a directory" test -d "$MNT/marker-only"
check "dir implied by a deep key" test -d "$MNT/deep/x"
check "conflict: the directory wins" test -d "$MNT/conflict"
check "0-byte file has size 0" test "$(stat -c %s "$MNT/a/empty-file")" = 0
check_eq "1-byte file" "c" "$(cat "$MNT/a/b/c/one-byte")"
check_eq "sizes match" "$(cd "$SRC" && find . -type f -printf '%P %s\n' | sort)" \
  "$(cd "$MNT" && find . -type f -printf '%P %s\n' | sort)"

while IFS= read -r -d '' f; do
  rel=${f#"$SRC"/}
  [[ "$(sha < "$f")" == "$(sha < "$MNT/$rel")" ]] || fail "content differs: $rel"
done < <(find "$SRC" -type f -print0)
log "ok: every file reads back byte-identical (cat | sha256sum)"

cp -r "$MNT" "$E2E_TMP/copy"
check "cp -r copy equals the source" diff -r "$SRC" "$E2E_TMP/copy"
check_eq "grep -r finds every needle" "$(cd "$SRC" && grep -rl needle . | sort)" \
  "$(cd "$MNT" && grep -rl needle . | sort)"
check_eq "tar c lists the tree" "$(tar c -C "$SRC" . | tar t | sort)" "$(tar c -C "$MNT" . | tar t | sort)"
mkdir "$E2E_TMP/untar" && tar c -C "$MNT" . | tar x -C "$E2E_TMP/untar"
check "tar round trip equals the source" diff -r "$SRC" "$E2E_TMP/untar"

check "the conflicting file is logged" grep -q "conflict" "$E2E_TMP/m.log"
unmount_fs "$MNT" "$MNT_PID"
log "PASS"
