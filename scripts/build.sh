#!/usr/bin/env bash
# scripts/build.sh [BUILD_DIR] [cmake args...] — configures and builds s3cachefs (Release with
# debug info) into BUILD_DIR (default: build/ in the repo). Idempotent and incremental.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${1:-$REPO/build}"
shift || true
cmake -S "$REPO" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
cmake --build "$BUILD" -j"$(nproc)"
