#!/usr/bin/env bash
# scripts/s3rver.sh — run a local S3 server (s3rver 3.7.1, patched; see
# scripts/s3rver/patches/) for s3cachefs tests.
#
# Usage:
#   scripts/s3rver.sh start DATA_DIR [--tls] [--bucket NAME]...
#       Installs the node deps if needed, starts s3rver in the background on
#       127.0.0.1 at a free port with its objects in DATA_DIR/data, logs to
#       DATA_DIR/s3rver.log, writes DATA_DIR/pid and DATA_DIR/endpoint, waits
#       until it answers, creates the buckets given, and prints the endpoint
#       URL (http://127.0.0.1:PORT) on stdout. If a server from DATA_DIR is
#       already running it is reused (its endpoint is printed).
#       --tls: serves https instead, with a certificate for 127.0.0.1 and
#       localhost signed by a CA of its own, made once in DATA_DIR/tls/
#       (the CA certificate is DATA_DIR/tls/ca.pem; `env` exports it as
#       AWS_CA_BUNDLE).
#   scripts/s3rver.sh stop DATA_DIR
#       Stops the server whose PID is in DATA_DIR/pid (only that process) and
#       removes the pid and endpoint files. Does nothing when none is running.
#   scripts/s3rver.sh env DATA_DIR
#       Prints `export` lines for the AWS_* variables, for
#       eval "$(scripts/s3rver.sh env DATA_DIR)" (with AWS_CA_BUNDLE when the
#       server serves https).
#   scripts/s3rver.sh install
#       Runs `npm ci` in scripts/s3rver unless node_modules already matches
#       package-lock.json and the patches.
#
# Credentials: s3rver's built-in account, access key id S3RVER, secret access
# key S3RVER; region us-east-1; path-style addressing. s3rver checks only the
# access key id of SigV4 requests (not the signature) and accepts unsigned
# requests too.
#
# Instances in different DATA_DIRs are independent and can run side by side.
# Environment: S3RVER_START_TIMEOUT (seconds, default 30) bounds the wait for
# the server to answer. S3RVER_PORT asks for a given port instead of a free one
# (to restart a stopped server where its clients expect it).
set -euo pipefail
shopt -s inherit_errexit

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly SCRIPT_DIR
readonly PKG_DIR="$SCRIPT_DIR/s3rver"
readonly S3RVER_JS="$PKG_DIR/node_modules/s3rver/bin/s3rver.js"
readonly STAMP="$PKG_DIR/node_modules/.s3cachefs-deps-stamp"
readonly ACCESS_KEY=S3RVER
readonly SECRET_KEY=S3RVER
readonly REGION=us-east-1
TLS_CA=""  # the CA certificate of the server being started, when it serves https

die() {
  echo "s3rver.sh: error: $*" >&2
  exit 1
}

usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//' >&2
  exit 2
}

# ---------------------------------------------------------------- node deps

deps_fingerprint() {
  (
    cd "$PKG_DIR"
    cat package.json package-lock.json
    if [[ -d patches ]]; then
      find patches -type f -name '*.patch' -print0 | sort -z | xargs -0r cat
    fi
    node --version
  ) | sha256sum | cut -d' ' -f1
}

deps_up_to_date() {
  [[ -f "$STAMP" && -f "$S3RVER_JS" ]] &&
    [[ "$(cat "$STAMP")" == "$(deps_fingerprint)" ]]
}

install_deps() {
  command -v node >/dev/null || die "node not found on PATH (run scripts/setup.sh)"
  command -v npm >/dev/null || die "npm not found on PATH (run scripts/setup.sh)"
  deps_up_to_date && return 0
  # Serialize concurrent installs (e.g. parallel test jobs) on the lockfile.
  exec 9<"$PKG_DIR/package-lock.json"
  flock 9
  if ! deps_up_to_date; then
    echo "s3rver.sh: installing node deps (npm ci in $PKG_DIR)" >&2
    local log
    log="$(mktemp)"
    if ! (cd "$PKG_DIR" && npm ci --no-audit --no-fund) >"$log" 2>&1; then
      cat "$log" >&2
      rm -f "$log"
      die "npm ci failed in $PKG_DIR"
    fi
    rm -f "$log"
    grep -q nextStartAfter "$PKG_DIR/node_modules/s3rver/lib/stores/filesystem.js" ||
      die "s3rver patch was not applied (patch-package)"
    deps_fingerprint >"$STAMP"
  fi
  exec 9<&-
}

# ------------------------------------------------------------------ helpers

abs_dir() {
  mkdir -p "$1"
  (cd "$1" && pwd)
}

# running PID: true if PID exists and is not a zombie.
running() {
  kill -0 "$1" 2>/dev/null || return 1
  local state
  state="$(sed -n 's/^[0-9]* (.*) \([A-Za-z]\) .*/\1/p' "/proc/$1/stat" 2>/dev/null || true)"
  [[ "$state" != Z ]]
}

# pid_alive PID: true if PID is a running s3rver process (guards against the
# PID having been reused by an unrelated process).
pid_alive() {
  local pid="$1"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  running "$pid" || return 1
  [[ -r "/proc/$pid/cmdline" ]] || return 0
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q 's3rver'
}

read_pid() {
  local f="$1/pid"
  [[ -f "$f" ]] && cat "$f"
}

# http_request METHOD URL: prints the HTTP status code (000 if no answer) on
# the first line, then the response body.
http_request() {
  local method="$1" url="$2"
  if command -v curl >/dev/null; then
    local body code
    body="$(mktemp)"
    code="$(curl -s -o "$body" -m 5 ${TLS_CA:+--cacert "$TLS_CA"} -X "$method" -w '%{http_code}' "$url" || true)"
    echo "${code:-000}"
    cat "$body"
    rm -f "$body"
  else
    python3 - "$method" "$url" "${TLS_CA:-}" <<'PY' || echo 000
import ssl, sys, urllib.request, urllib.error
req = urllib.request.Request(sys.argv[2], method=sys.argv[1])
try:
    ctx = ssl.create_default_context(cafile=sys.argv[3]) if sys.argv[3] else None
    r = urllib.request.urlopen(req, timeout=5, context=ctx)
    print(r.status); sys.stdout.write(r.read().decode(errors="replace"))
except urllib.error.HTTPError as e:
    print(e.code); sys.stdout.write(e.read().decode(errors="replace"))
except Exception:
    print("000")
PY
  fi
}

# answers URL: true if an HTTP server answers at URL
answers() {
  [[ "$(http_request GET "$1" | head -n1)" != 000 ]]
}

# create_bucket ENDPOINT NAME: creates the bucket unless it already exists
# (s3rver accepts unsigned requests).
create_bucket() {
  local out code
  out="$(http_request PUT "$1/$2")"
  code="$(head -n1 <<<"$out")"
  case "$code" in
    200) ;;
    409) grep -q BucketAlreadyExists <<<"$out" || {
      echo "s3rver.sh: error: creating bucket '$2': HTTP $code: $(tail -n +2 <<<"$out")" >&2
      return 1
    } ;;
    *)
      echo "s3rver.sh: error: creating bucket '$2': HTTP $code: $(tail -n +2 <<<"$out")" >&2
      return 1
      ;;
  esac
}

# make_tls DIR: a CA and a server certificate for 127.0.0.1 and localhost
# signed by it, in DIR/tls/, unless they are there already.
make_tls() {
  local tls="$1/tls"
  [[ -f "$tls/ca.pem" && -f "$tls/server.pem" && -f "$tls/server.key" ]] && return 0
  command -v openssl >/dev/null || die "openssl not found on PATH (run scripts/setup.sh)"
  mkdir -p "$tls"
  local log="$tls/openssl.log"
  {
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
      -subj "/CN=s3cachefs test CA" -keyout "$tls/ca.key" -out "$tls/ca.pem" \
      -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign &&
      openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -subj "/CN=127.0.0.1" -keyout "$tls/server.key" -out "$tls/server.csr" &&
      openssl x509 -req -in "$tls/server.csr" -CA "$tls/ca.pem" -CAkey "$tls/ca.key" \
        -CAcreateserial -days 3650 -out "$tls/server.pem" \
        -extfile <(printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n')
  } >"$log" 2>&1 || {
    cat "$log" >&2
    die "could not make the TLS certificates in $tls"
  }
}

# ----------------------------------------------------------------- commands

cmd_start() {
  [[ $# -ge 1 ]] || usage
  local dir
  dir="$(abs_dir "$1")"
  shift
  local -a buckets=()
  local tls=0
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --tls)
        tls=1
        shift
        ;;
      --bucket)
        [[ $# -ge 2 ]] || die "--bucket needs a name"
        buckets+=("$2")
        shift 2
        ;;
      --bucket=*)
        buckets+=("${1#--bucket=}")
        shift
        ;;
      *) die "unknown option: $1" ;;
    esac
  done

  if ((tls)); then
    make_tls "$dir"
    TLS_CA="$dir/tls/ca.pem"
  fi
  local pid endpoint launched=0
  pid="$(read_pid "$dir" || true)"
  if [[ -n "$pid" ]] && pid_alive "$pid" && [[ -f "$dir/endpoint" ]]; then
    endpoint="$(cat "$dir/endpoint")"
    if [[ "$endpoint" == https://* ]]; then TLS_CA="$dir/tls/ca.pem"; fi
    answers "$endpoint/" ||
      die "s3rver (pid $pid) from $dir is running but not answering at $endpoint"
    echo "s3rver.sh: reusing s3rver pid $pid at $endpoint" >&2
  else
    rm -f "$dir/pid" "$dir/endpoint"
    install_deps
    endpoint="$(launch "$dir")"
    launched=1
  fi

  local b
  for b in "${buckets[@]}"; do
    if ! create_bucket "$endpoint" "$b"; then
      if ((launched)); then cmd_stop "$dir"; fi
      exit 1
    fi
  done
  echo "$endpoint"
}

# launch DIR: starts s3rver, prints its endpoint. s3rver binds port 0 (the
# kernel picks a free port, so two instances cannot race for one) and logs
# the port it got; a failed start is retried a few times anyway. Serves https
# when TLS_CA is set (make_tls made the certificates).
launch() {
  local dir="$1" log="$1/s3rver.log" timeout="${S3RVER_START_TIMEOUT:-30}"
  local scheme=http
  local -a tls_args=()
  if [[ -n "${TLS_CA:-}" ]]; then
    scheme=https
    tls_args=(--key "$dir/tls/server.key" --cert "$dir/tls/server.pem")
  fi
  mkdir -p "$dir/data"
  local node_opts="${NODE_OPTIONS:-}"
  # Node >= 17 (OpenSSL 3) needs the legacy provider for the DES cipher that
  # s3rver uses for ListObjectsV2 continuation tokens (else HTTP 500).
  if node --openssl-legacy-provider -e 0 >/dev/null 2>&1; then
    node_opts="${node_opts:+$node_opts }--openssl-legacy-provider"
  fi

  local attempt pid port deadline
  for attempt in 1 2 3 4 5; do
    : >"$log"
    # setsid: not in the caller's process group, so its signals (e.g. a
    # test runner's Ctrl-C) do not stop the server; use `stop` for that.
    NODE_OPTIONS="$node_opts" setsid node "$S3RVER_JS" \
      --directory "$dir/data" --address 127.0.0.1 --port "${S3RVER_PORT:-0}" \
      --no-vhost-buckets "${tls_args[@]}" </dev/null >>"$log" 2>&1 &
    pid=$!
    echo "$pid" >"$dir/pid"
    deadline=$((SECONDS + timeout))
    port=""
    while ((SECONDS < deadline)); do
      if ! kill -0 "$pid" 2>/dev/null; then
        break
      fi
      port="$(sed -n 's/^S3rver listening on 127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p' "$log" | head -n1)"
      if [[ -n "$port" ]] && answers "$scheme://127.0.0.1:$port/"; then
        echo "$scheme://127.0.0.1:$port" >"$dir/endpoint"
        echo "s3rver.sh: s3rver pid $pid listening on $scheme://127.0.0.1:$port (data $dir/data, log $log)" >&2
        echo "$scheme://127.0.0.1:$port"
        return 0
      fi
      sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
      # running but never answered within the timeout: give up
      kill "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
      rm -f "$dir/pid"
      echo "s3rver.sh: s3rver did not answer within ${timeout}s; last log lines:" >&2
      tail -n 30 "$log" >&2
      exit 1
    fi
    wait "$pid" 2>/dev/null || true
    rm -f "$dir/pid"
    if grep -q EADDRINUSE "$log"; then
      echo "s3rver.sh: port taken, retrying (attempt $attempt)" >&2
      continue
    fi
    echo "s3rver.sh: s3rver exited during start-up; last log lines:" >&2
    tail -n 30 "$log" >&2
    exit 1
  done
  echo "s3rver.sh: could not start s3rver after $attempt attempts; last log lines:" >&2
  tail -n 30 "$log" >&2
  exit 1
}

cmd_stop() {
  [[ $# -eq 1 ]] || usage
  local dir="$1" pid i
  [[ -d "$dir" ]] || return 0
  pid="$(read_pid "$dir" || true)"
  if [[ -n "$pid" ]] && pid_alive "$pid"; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
      running "$pid" || break
      sleep 0.1
    done
    if running "$pid"; then
      echo "s3rver.sh: pid $pid ignored SIGTERM, sending SIGKILL" >&2
      kill -KILL "$pid" 2>/dev/null || true
      for ((i = 0; i < 50; i++)); do
        running "$pid" || break
        sleep 0.1
      done
      ! running "$pid" || die "could not stop pid $pid"
    fi
  fi
  rm -f "$dir/pid" "$dir/endpoint"
}

cmd_env() {
  [[ $# -eq 1 ]] || usage
  local f="$1/endpoint"
  [[ -f "$f" ]] || die "no endpoint file $f (is the server started?)"
  local endpoint
  endpoint="$(cat "$f")"
  printf 'export AWS_ACCESS_KEY_ID=%q\n' "$ACCESS_KEY"
  printf 'export AWS_SECRET_ACCESS_KEY=%q\n' "$SECRET_KEY"
  printf 'export AWS_REGION=%q\n' "$REGION"
  printf 'export AWS_DEFAULT_REGION=%q\n' "$REGION"
  printf 'export AWS_ENDPOINT_URL=%q\n' "$endpoint"
  if [[ "$endpoint" == https://* ]]; then
    printf 'export AWS_CA_BUNDLE=%q\n' "$(cd "$1" && pwd)/tls/ca.pem"
  fi
}

main() {
  [[ $# -ge 1 ]] || usage
  local cmd="$1"
  shift
  case "$cmd" in
    start) cmd_start "$@" ;;
    stop) cmd_stop "$@" ;;
    env) cmd_env "$@" ;;
    install) [[ $# -eq 0 ]] || usage; install_deps ;;
    -h | --help | help) usage ;;
    *) usage ;;
  esac
}

main "$@"
