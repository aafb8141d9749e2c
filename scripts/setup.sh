#!/usr/bin/env bash
# scripts/setup.sh — install what s3cachefs needs to build and test on Debian 12.
#
# Idempotent and quick when everything is already there: installs (as root,
# non-interactively) only the missing ones among the Debian packages below,
# running `apt-get update` only when a package is missing and the package
# lists are stale or do not know it; then installs the local S3 server's node
# deps (`npm ci` in scripts/s3rver, skipped when node_modules already matches
# package-lock.json and the patches).
#
# nodejs/npm are not taken from apt when `node` and `npm` are already on PATH
# (a preinstalled Node conflicts with Debian's nodejs package).
#
# Usage: scripts/setup.sh        (run as root, or with sudo available)
# Environment: SETUP_APT_MAX_AGE_HOURS (default 6): package lists older than
# this are refreshed before installing.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly SCRIPT_DIR

readonly PACKAGES=(
  build-essential cmake pkg-config g++ git
  libfuse3-dev fuse3
  libcurl4-openssl-dev libssl-dev libsqlite3-dev sqlite3 libpugixml-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  awscli nodejs npm curl python3 openssl
  fio s3fs rclone gnuplot-nox
  clang-format clang-tidy attr rsync bc
)
readonly MAX_AGE_HOURS="${SETUP_APT_MAX_AGE_HOURS:-6}"
# wait this long for another apt/dpkg process to release its lock
readonly LOCK_TIMEOUT=900

log() { echo "setup: $*" >&2; }
die() {
  echo "setup: ERROR: $*" >&2
  exit 1
}
on_err() {
  echo "setup: ERROR: command failed (exit $1) at line $2: $3" >&2
}
trap 'on_err $? $LINENO "$BASH_COMMAND"' ERR

SUDO=()
if [[ $EUID -ne 0 ]]; then
  command -v sudo >/dev/null || die "must run as root (or have sudo)"
  SUDO=(sudo)
fi

apt_get() {
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive NEEDRESTART_MODE=a \
    apt-get -q -y -o DPkg::Lock::Timeout="$LOCK_TIMEOUT" "$@"
}

# missing_packages PKG...: prints those of the packages that are not installed.
missing_packages() {
  local -A ok=()
  local pkg status
  while IFS=$'\t' read -r pkg status; do
    if [[ "$status" == ii* ]]; then ok["${pkg%%:*}"]=1; fi
  done < <(dpkg-query -W -f='${Package}\t${db:Status-Abbrev}\n' "$@" 2>/dev/null || true)
  for pkg in "$@"; do
    [[ -n "${ok[$pkg]:-}" ]] || echo "$pkg"
  done
}

# lists_fresh: true if the apt package lists were refreshed within MAX_AGE_HOURS
# (apt sets the lists' mtime to the server's date, so use their ctime).
lists_fresh() {
  local newest=0 f t
  for f in /var/lib/apt/lists/*_InRelease /var/lib/apt/lists/*_Release; do
    [[ -e "$f" ]] || continue
    t="$(stat -c %Z "$f")"
    if ((t > newest)); then newest="$t"; fi
  done
  ((newest > 0 && $(date +%s) - newest < MAX_AGE_HOURS * 3600))
}

# known PKG...: true if apt has an install candidate for every package given.
known() {
  local pkg cand
  for pkg in "$@"; do
    cand="$(apt-cache policy "$pkg" 2>/dev/null | sed -n 's/^ *Candidate: //p')"
    [[ -n "$cand" && "$cand" != "(none)" ]] || return 1
  done
}

apt_update() {
  local i
  log "apt-get update"
  for i in 1 2 3; do
    apt_get update && return 0
    log "apt-get update failed (try $i), retrying in 10s (another apt may hold the lock)"
    sleep 10
  done
  die "apt-get update failed"
}

install_apt_packages() {
  local -a wanted=()
  local pkg
  for pkg in "${PACKAGES[@]}"; do
    if [[ "$pkg" == nodejs || "$pkg" == npm ]] &&
      command -v node >/dev/null && command -v npm >/dev/null; then
      continue # keep the Node already on PATH
    fi
    wanted+=("$pkg")
  done

  local -a missing
  mapfile -t missing < <(missing_packages "${wanted[@]}")
  if ((${#missing[@]} == 0)); then
    log "apt packages: all ${#wanted[@]} present"
    return 0
  fi
  log "apt packages missing: ${missing[*]}"

  local updated=0
  if ! lists_fresh || ! known "${missing[@]}"; then
    apt_update
    updated=1
  fi
  log "apt-get install ${missing[*]}"
  if ! apt_get install --no-install-recommends "${missing[@]}"; then
    ((updated)) && die "apt-get install failed: ${missing[*]}"
    log "install failed; refreshing package lists and retrying"
    apt_update
    apt_get install --no-install-recommends "${missing[@]}" ||
      die "apt-get install failed: ${missing[*]}"
  fi

  mapfile -t missing < <(missing_packages "${wanted[@]}")
  ((${#missing[@]} == 0)) || die "still not installed: ${missing[*]}"
  log "apt packages: installed"
}

main() {
  if ! command -v dpkg-query >/dev/null || ! command -v apt-get >/dev/null; then
    die "this script needs a Debian system (apt-get, dpkg-query)"
  fi
  install_apt_packages
  command -v node >/dev/null || die "node is not on PATH after installing nodejs"
  command -v npm >/dev/null || die "npm is not on PATH after installing npm"
  log "node deps for the local S3 server (scripts/s3rver)"
  "$SCRIPT_DIR/s3rver.sh" install
  log "done"
}

main "$@"
