#!/usr/bin/env bash
# Crossformer on ETTh1 (multivariate), seeds 0,1,2.
# 1) the common protocol, seq_len 96 (segment 12), horizons 96/192/336/720;
# 2) the paper's own settings (its scripts/ETTh1.sh): input 168 with segment 6 for horizons
#    24/48 (lr 1e-4), input 720 with segment 24 and lr 1e-5 for 168/336/720.
#   DATA_DIR=/path/to/data bash scripts/forecast/crossformer_etth1.sh [extra hydra overrides]
set -euo pipefail
cd "$(dirname "$0")/../.."
stamp=$(date +%Y-%m-%d_%H-%M-%S)
out=outputs/multirun/crossformer_etth1_$stamp
python main.py -m experiment=crossformer_etth1 data.pred_len=96,192,336,720 seed=0,1,2 \
  trainer.progress=false hydra.sweep.dir=$out "$@"
python scripts/summarise.py $out --metrics test.mse test.mae

out=outputs/multirun/crossformer_etth1_paper_short_$stamp
python main.py -m experiment=crossformer_etth1 data.seq_len=168 model.seg_len=6 \
  data.pred_len=24,48 seed=0,1,2 trainer.progress=false hydra.sweep.dir=$out "$@"
python scripts/summarise.py $out --metrics test.mse test.mae

out=outputs/multirun/crossformer_etth1_paper_long_$stamp
python main.py -m experiment=crossformer_etth1 data.seq_len=720 model.seg_len=24 optimizer.lr=1e-5 \
  data.pred_len=168,336,720 seed=0,1,2 trainer.progress=false hydra.sweep.dir=$out "$@"
python scripts/summarise.py $out --metrics test.mse test.mae
