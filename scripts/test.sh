#!/usr/bin/env bash
# scripts/test.sh — installs what is needed (scripts/setup.sh), builds, and runs every test:
# unit tests, integration tests against a private s3rver, and end-to-end tests through real
# FUSE mounts checked with awscli. Run as root on Debian 12. Extra args go to ctest.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${S3CACHEFS_BUILD_DIR:-$REPO/build}"
"$REPO/scripts/setup.sh"
"$REPO/scripts/build.sh" "$BUILD"
cd "$BUILD"
ctest --output-on-failure -j2 --timeout 900 "$@"
