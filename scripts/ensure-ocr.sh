#!/usr/bin/env bash
# Tesseract OCR from Debian's packages, with the language data of OCR_LANGUAGES (default eng) and of
# any language codes given as arguments (the tests add fra and deu). Language data comes from
# Debian (tesseract-ocr-<code>), never downloaded at run time.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

configured=${OCR_LANGUAGES:-eng}
languages=$(printf '%s\n' ${configured//[,+]/ } "$@" | tr 'A-Z' 'a-z' | sort -u)
missing=()
command -v tesseract >/dev/null || missing+=(tesseract-ocr)
installed=$(tesseract --list-langs 2>/dev/null | tail -n +2 || true)
for code in $languages; do
  [[ "$code" =~ ^[a-z_]+$ ]] || die "OCR_LANGUAGES: '$code' is not a Tesseract language code (eng, fra, deu, chi_sim, ...)"
  grep -qx "$code" <<<"$installed" || missing+=("tesseract-ocr-${code//_/-}")
done
[[ ${#missing[@]} -eq 0 ]] || apt_install "${missing[@]}"
