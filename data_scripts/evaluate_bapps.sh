#!/usr/bin/env bash
# Score metrics on every BAPPS val set (2AFC: traditional, cnn, superres, deblur, color,
# frameinterp; JND: traditional, cnn) and write the Table-5-style reports.
#
#   data_scripts/evaluate_bapps.sh [DATA] [OUT] [METRICS]
#     DATA     packed .h5 or BAPPS folder root       (default: bapps_data/bapps.h5)
#     OUT      folder for the reports                (default: results)
#     METRICS  space-separated metric names          (default: "l2 l2-lab ssim ssim-lab ms-ssim fsimc lpips-alex lpips-vgg lpips-squeeze")
#   CHECKPOINTS="runs/alex-lin runs/vgg-lin"  also score metrics trained by `bapps train`
#
# LPIPS needs torchvision's ImageNet backbone weights in the torch hub cache ($TORCH_HOME) or a
# network connection; without them `bapps evaluate` stops and says how to get them (pass
# --backbone-weights NET=random yourself only if you want explicitly UNCALIBRATED numbers).
# Uses the GPU when there is one. Writes OUT/results.{csv,md,tex,json}, OUT/results.png (needs
# matplotlib) and the per-item distances OUT/distances.npz.
set -euo pipefail
DATA=${1:-bapps_data/bapps.h5}
OUT=${2:-results}
METRICS=${3:-"l2 l2-lab ssim ssim-lab ms-ssim fsimc lpips-alex lpips-vgg lpips-squeeze"}

ckpt=()
for c in ${CHECKPOINTS:-}; do
  ckpt+=(--checkpoint "$c")
done
plot=()
if python -c "import matplotlib" 2>/dev/null; then
  plot=(--plot "$OUT/results.png")
else
  echo "matplotlib not installed: no figure (pip install 'bapps-toolkit[plot]')" >&2
fi
mkdir -p "$OUT"
# shellcheck disable=SC2086
bapps evaluate "$DATA" --metrics $METRICS "${ckpt[@]}" --datasets val \
  --out "$OUT/results.csv" --markdown "$OUT/results.md" --latex "$OUT/results.tex" \
  --json "$OUT/results.json" --save-distances "$OUT/distances.npz" "${plot[@]}"
