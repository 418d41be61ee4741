#!/usr/bin/env bash
# Informer on the common long-horizon protocol (seq_len 96, label_len 48), horizons
# 96/192/336/720, seeds 0,1,2 -- the setting later papers (Autoformer, PatchTST) report it in.
#   DATA_DIR=/path/to/data bash scripts/forecast/informer_etth1_common.sh [extra hydra overrides]
set -euo pipefail
cd "$(dirname "$0")/../.."
out=outputs/multirun/informer_etth1_common_$(date +%Y-%m-%d_%H-%M-%S)
python main.py -m model=informer data=ett data.name=ETTh1 data.seq_len=96 data.label_len=48 \
  data.pred_len=96,192,336,720 seed=0,1,2 trainer.progress=false hydra.sweep.dir=$out "$@"
python scripts/summarise.py $out --metrics test.mse test.mae
