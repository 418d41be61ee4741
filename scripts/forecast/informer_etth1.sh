#!/usr/bin/env bash
# Informer in its own ETTh1 multivariate setting (scripts/ETTh1.sh of the paper's code):
# horizon 24 (seq 48, label 48, factor 3), 48 (seq 96, label 48), 168 / 336 (seq 168, label 168),
# 720 (seq 336, label 336); seeds 0,1,2. Informer README MSE: 0.577 / 0.685 / 0.931 / 1.128 / 1.215.
#   DATA_DIR=/path/to/data bash scripts/forecast/informer_etth1.sh [extra hydra overrides]
set -euo pipefail
cd "$(dirname "$0")/../.."
out=outputs/multirun/informer_etth1_$(date +%Y-%m-%d_%H-%M-%S)
python main.py -m \
  experiment=informer_etth1,informer_etth1_h48,informer_etth1_h168,informer_etth1_h336,informer_etth1_h720 \
  seed=0,1,2 trainer.progress=false hydra.sweep.dir=$out "$@"
python scripts/summarise.py $out --metrics test.mse test.mae
