#!/usr/bin/env bash
# TS2Vec / TimesURL UCR and UEA protocol: self-supervised pretraining on the official TRAIN split
# (labels unused), RBF-SVM on the frozen max-pooled representations (C by 5-fold grid search on
# TRAIN), accuracy on the official TEST split; seeds 0,1,2; then a mean ± std table per setting.
#   DATA_DIR=/path/to/data bash scripts/ssl/ucr_uea.sh [extra hydra overrides, e.g. trainer.device=cuda]
#   MODELS=ts2vec SEEDS=0 UCR=ECG200 UEA= bash scripts/ssl/ucr_uea.sh       # a smaller sweep
set -euo pipefail
cd "$(dirname "$0")/../.."
MODELS=${MODELS-ts2vec,timesurl}
SEEDS=${SEEDS-0,1,2}
UCR=${UCR-ECG200,ECG5000,GunPoint,Coffee,ArrowHead,ItalyPowerDemand}
UEA=${UEA-BasicMotions,JapaneseVowels,AtrialFibrillation,Epilepsy}
stamp=$(date +%Y-%m-%d_%H-%M-%S)

for archive in ucr uea; do
  names=$([ "$archive" = ucr ] && echo "$UCR" || echo "$UEA")
  [ -z "$names" ] && continue
  dir=outputs/multirun/ssl_${archive}_$stamp
  python main.py -m model="$MODELS" data=$archive data.name="$names" seed="$SEEDS" \
    task.protocol=svm trainer.progress=false hydra.sweep.dir="$dir" "$@"
  python scripts/summarise.py "$dir" --metrics test.accuracy test.macro_f1 test.auroc
done
