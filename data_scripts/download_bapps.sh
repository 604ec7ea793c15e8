#!/usr/bin/env bash
# Download and unpack BAPPS into a folder (default ./bapps_data), via `bapps download`.
# Usage: data_scripts/download_bapps.sh [DIR] [--val-only] [--base-url URL] [--from-archive PATH]
# Rerunning resumes an interrupted download and skips archives that are already unpacked.
set -euo pipefail
root="./bapps_data"
if [ "$#" -gt 0 ] && [ "${1#-}" = "$1" ]; then root="$1"; shift; fi
if command -v bapps >/dev/null 2>&1; then
  exec bapps download --root "$root" "$@"
else
  exec "${PYTHON:-python3}" -m bapps_toolkit download --root "$root" "$@"
fi
