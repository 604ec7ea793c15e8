#!/usr/bin/env bash
# Build the synthetic BAPPS-layout mini set, pack it and verify it (thin wrapper over the CLI).
#   data_scripts/make_mini.sh [OUT_DIR] [SEED]
# Defaults: OUT_DIR=./bapps_demo/mini, SEED=0; the packed file is OUT_DIR.h5.
# The mini set is SYNTHETIC (simulated observer, not human judgments); see OUT_DIR/SYNTHETIC.txt.
set -euo pipefail
OUT="${1:-bapps_demo/mini}"
SEED="${2:-0}"
bapps make-mini "$OUT" --seed "$SEED"
if [ ! -e "$OUT.h5" ]; then
  bapps pack "$OUT" "$OUT.h5"
fi
bapps verify "$OUT.h5"
