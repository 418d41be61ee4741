#!/usr/bin/env bash
# PatchTST/42 on ETTh1 (multivariate), horizons 96/192/336/720, seeds 0,1,2, then mean ± std.
# Paper (Nie et al. 2023, Table 3, PatchTST/42) MSE: 0.375 / 0.414 / 0.431 / 0.449.
#   DATA_DIR=/path/to/data bash scripts/forecast/patchtst_etth1.sh [extra hydra overrides]
set -euo pipefail
cd "$(dirname "$0")/../.."
out=outputs/multirun/patchtst_etth1_$(date +%Y-%m-%d_%H-%M-%S)
python main.py -m experiment=patchtst_etth1 data.pred_len=96,192,336,720 seed=0,1,2 \
  trainer.progress=false hydra.sweep.dir=$out "$@"
python scripts/summarise.py $out --metrics test.mse test.mae test.orig_mse
