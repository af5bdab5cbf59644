#!/usr/bin/env bash
# Make sure the programs the suite drives are installed, from Debian's packages (nothing downloads at
# run time): chromium for the admin's browser tests (Playwright drives it through executable_path)
# promtool (package prometheus) to check /metrics, and DejaVu fonts (OCR tests draw Cyrillic pages).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

missing=()
command -v chromium >/dev/null || missing+=(chromium)
command -v promtool >/dev/null || missing+=(prometheus)
[[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ]] || missing+=(fonts-dejavu-core)
[[ ${#missing[@]} -eq 0 ]] || apt_install "${missing[@]}"
