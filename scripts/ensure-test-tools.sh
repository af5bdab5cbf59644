#!/usr/bin/env bash
# Make sure the programs the suite drives are installed, from Debian's packages (nothing downloads at
# run time): chromium for the admin's browser tests (Playwright drives it through executable_path)
# and promtool (package prometheus) to check /metrics.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

missing=()
command -v chromium >/dev/null || missing+=(chromium)
command -v promtool >/dev/null || missing+=(prometheus)
[[ ${#missing[@]} -eq 0 ]] || apt_install "${missing[@]}"
