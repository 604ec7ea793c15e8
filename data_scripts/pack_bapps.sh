#!/usr/bin/env bash
# Pack a BAPPS folder tree into one HDF5 file, then verify it (thin wrapper over the CLI).
#   data_scripts/pack_bapps.sh [ROOT] [OUT.h5] [extra `bapps pack` options, e.g. --workers 4 --force]
# Defaults: ROOT=./bapps_data (where `bapps download` unpacks 2afc/ and jnd/), OUT=./bapps_data/bapps.h5
set -euo pipefail
ROOT="${1:-bapps_data}"
OUT="${2:-bapps_data/bapps.h5}"
shift $(( $# > 2 ? 2 : $# ))
bapps pack "$ROOT" "$OUT" "$@"
bapps verify "$OUT"
