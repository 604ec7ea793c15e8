#!/usr/bin/env bash
# Train the LPIPS "lin" metrics (alex, vgg, squeeze) on all of BAPPS 2AFC train with the official
# schedule (Adam 1e-4, betas 0.5/0.999, batch 50, 5 + 5 epochs), scoring val 2AFC after every epoch.
#
#   data_scripts/train_lin.sh [DATA] [OUT] [NETS]
#     DATA  BAPPS root or packed .h5        (default: bapps_data)
#     OUT   folder for the runs             (default: checkpoints)
#     NETS  space-separated nets            (default: "alex vgg squeeze")
#   NPROC=N  run each training under torchrun with N processes (one per GPU)
#
# Needs torchvision's ImageNet backbone weights in the torch hub cache ($TORCH_HOME) or a network
# connection to fetch them; without them `bapps train` stops with instructions (it never trains a
# calibrated metric on a random backbone). An interrupted run is resumed where it stopped.
set -euo pipefail
DATA=${1:-bapps_data}
OUT=${2:-checkpoints}
NETS=${3:-"alex vgg squeeze"}
NPROC=${NPROC:-1}

for net in $NETS; do
  run="$OUT/$net-lin"
  extra=()
  if [ -f "$run/card.json" ]; then
    extra+=(--resume)
  fi
  if [ "$NPROC" -gt 1 ]; then
    launcher=(torchrun --standalone --nproc_per_node="$NPROC" -m bapps_toolkit)
  else
    launcher=(bapps)
  fi
  echo "== $net lin -> $run"
  "${launcher[@]}" train "$DATA" --net "$net" --variant lin --out "$run" --val "${extra[@]}"
done
