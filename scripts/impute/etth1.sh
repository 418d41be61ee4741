#!/usr/bin/env bash
# Imputation on ETTh1 (multivariate, windows of 96): 12.5 / 25 / 37.5 / 50 % of the values hidden
# at random, seeds 0,1,2, then mean ± std of the errors on the hidden values beside linear
# interpolation and the window mean (the baselines score the same hidden values).
#   DATA_DIR=/path/to/data bash scripts/impute/etth1.sh transformer_imputer|ddpm [overrides]
set -euo pipefail
cd "$(dirname "$0")/../.."
model=${1:?name the model: transformer_imputer or ddpm}
shift
out=outputs/multirun/impute_etth1_${model}_$(date +%Y-%m-%d_%H-%M-%S)
python main.py -m model=$model task=impute data=ett data.name=ETTh1 task.mask_rate=0.125,0.25,0.375,0.5 \
  seed=0,1,2 trainer.progress=false hydra.sweep.dir=$out "$@"
python scripts/summarise.py $out --metrics test.mse test.mae test.baseline_linear.mse \
  test.baseline_linear.mae test.baseline_mean.mse
