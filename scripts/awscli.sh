#!/usr/bin/env bash
# scripts/awscli.sh — run Debian's AWS CLI as the independent S3 client of the
# s3cachefs tests: `scripts/awscli.sh s3api list-buckets`, etc.
#
# Uses /usr/bin/aws (Debian's awscli package) when it exists, else `aws` from
# PATH. Adds --endpoint-url "$AWS_ENDPOINT_URL" when AWS_ENDPOINT_URL is set
# (e.g. after eval "$(scripts/s3rver.sh env DATA_DIR)").
set -euo pipefail

aws_bin=/usr/bin/aws
if [[ ! -x "$aws_bin" ]]; then
  aws_bin="$(command -v aws || true)"
  if [[ -z "$aws_bin" ]]; then
    echo "awscli.sh: error: aws CLI not found (run scripts/setup.sh)" >&2
    exit 127
  fi
fi

# never page output (awscli v2 pipes to less on a terminal)
export AWS_PAGER="${AWS_PAGER-}"

if [[ -n "${AWS_ENDPOINT_URL:-}" ]]; then
  exec "$aws_bin" --endpoint-url "$AWS_ENDPOINT_URL" "$@"
fi
exec "$aws_bin" "$@"
