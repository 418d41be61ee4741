#!/usr/bin/env bash
# Supervised ECG classification sweep: models x seeds on MIT-BIH (inter-patient DS1 -> DS2)
# and on UCR ECG200, then a mean ± std table per setting.
#   DATA_DIR=/path/to/data bash scripts/ecg/classification.sh [extra hydra overrides]
set -euo pipefail
cd "$(dirname "$0")/../.."
stamp=$(date +%Y-%m-%d_%H-%M-%S)

python main.py -m task=classification model=resnet1d,transformer data=ecg seed=0,1,2 \
  hydra.sweep.dir=outputs/multirun/ecg_classification_$stamp "$@"
python scripts/summarise.py outputs/multirun/ecg_classification_$stamp \
  --metrics test.accuracy test.macro_f1 test.per_class.S.sensitivity test.per_class.V.sensitivity \
            test.per_class.S.ppv test.per_class.V.ppv

python main.py -m task=classification model=resnet1d,transformer data=ucr data.name=ECG200 seed=0,1,2 \
  hydra.sweep.dir=outputs/multirun/ecg200_classification_$stamp "$@"
python scripts/summarise.py outputs/multirun/ecg200_classification_$stamp
