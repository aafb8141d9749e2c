#!/usr/bin/env bash
# An https endpoint, as every real S3 is: s3rver serves TLS with a certificate signed by a CA of
# the test's own. With that CA in AWS_CA_BUNDLE (as the AWS CLI reads it) or -o ca_bundle, reads
# and writes (single PUT and multipart) go through and land in S3 as awscli sees them; with a CA
# bundle that does not hold it, or with the system's store, the mount fails at once with a message
# that names the certificate problem and the CA file checked, and leaves nothing mounted.
source "$(dirname "$0")/lib.sh" "$1"
start_server --tls
[[ "$E2E_ENDPOINT" == https://* ]] || fail "s3rver does not serve https: $E2E_ENDPOINT"
CA="$AWS_CA_BUNDLE"
make_bucket tlsbkt

REF="$E2E_TMP/ref"  # what the bucket must hold in the end
mkdir -p "$REF/dir"
head -c $((3 << 20)) /dev/urandom >"$REF/dir/seed.bin"
awsq s3 cp --quiet "$REF/dir/seed.bin" s3://tlsbkt/dir/seed.bin
head -c $((40 << 20)) /dev/urandom >"$REF/dir/big.bin"
head -c 4096 /dev/urandom >"$REF/small.bin"

mount_fs m tlsbkt
check_eq "a seeded object reads over https" "$(sha <"$REF/dir/seed.bin")" "$(sha <"$MNT/dir/seed.bin")"
cp "$REF/dir/big.bin" "$MNT/dir/big.bin"
cp "$REF/small.bin" "$MNT/small.bin"
unmount_fs "$MNT" "$MNT_PID"
check_eq "what S3 holds (awscli over https)" "$(local_sums "$REF")" "$(s3_sums tlsbkt)"
parts=$(awsq s3api head-object --bucket tlsbkt --key dir/big.bin --query ETag --output text)
[[ "$parts" == *-* ]] || fail "the 40 MiB file was not uploaded in parts: ETag $parts"
log "ok: the 40 MiB file went up in parts (ETag $parts)"

# A CA that did not sign the server's certificate.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
  -subj "/CN=some other CA" -keyout "$E2E_TMP/other.key" -out "$E2E_TMP/other.pem" 2>/dev/null
base="endpoint=$E2E_ENDPOINT,cache_dir=$E2E_TMP/m.cache,log_file=$E2E_TMP/fail.log"
AWS_CA_BUNDLE="$E2E_TMP/other.pem" expect_fail "a CA bundle without the server's CA" \
  "TLS failure.*certificate.*trusted CA certificates: $E2E_TMP/other.pem" tlsbkt "$E2E_TMP/mp" -o "$base"
(
  unset AWS_CA_BUNDLE
  expect_fail "the system's store" "TLS failure.*certificate.*the system's store" \
    tlsbkt "$E2E_TMP/mp" -o "$base"
)
AWS_CA_BUNDLE="$E2E_TMP/nosuch.pem" expect_fail "a CA bundle that does not exist" \
  "CA bundle $E2E_TMP/nosuch.pem" tlsbkt "$E2E_TMP/mp" -o "$base"

# -o ca_bundle overrides the environment; a second mount of the same cache serves what it kept.
AWS_CA_BUNDLE="$E2E_TMP/other.pem" mount_fs m tlsbkt "ca_bundle=$CA"
check_eq "-o ca_bundle= over AWS_CA_BUNDLE: reads" "$(sha <"$REF/dir/big.bin")" "$(sha <"$MNT/dir/big.bin")"
echo "written with -o ca_bundle" >"$MNT/note.txt"
unmount_fs "$MNT" "$MNT_PID"
check_eq "-o ca_bundle= over AWS_CA_BUNDLE: the write is in S3" "written with -o ca_bundle" \
  "$(awsq s3 cp s3://tlsbkt/note.txt -)"
log "PASS"
