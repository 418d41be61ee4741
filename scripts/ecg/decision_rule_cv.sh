#!/usr/bin/env bash
# Nested patient-wise cross-validation inside DS1 for MIT-BIH recipes, including those whose
# decision rule is fitted on held-out records (task.decision_rule=fitted). The three record
# groups of patient_cv.sh rotate: in fold k, group k is the validation split (early stopping and
# the fitted rule), group k+1 the scored split (passed as data.ds2_records, so metrics.json's
# "test" holds records no choice was made on), group k+2 and record 201 train. DS2 is never read.
# Each call runs one recipe over the three folds:
#   DATA_DIR=/path/to/data bash scripts/ecg/decision_rule_cv.sh <recipe name> [overrides]
# ROOT=<dir> sets the directory (default outputs/ecg_rule_cv); EPOCHS the epochs per fold (4,
# every fold trains them all: no early stopping). Summarise all recipes with
#   python scripts/summarise.py <ROOT> --pool data.ds1_records data.val_records data.ds2_records \
#     --metrics test.macro_f1 test.per_class.S.sensitivity test.per_class.S.ppv \
#               test.per_class.V.sensitivity test.per_class.V.ppv
set -euo pipefail
cd "$(dirname "$0")/../.."
name=${1:?name the recipe, e.g. default}; shift
root=${ROOT:-outputs/ecg_rule_cv}
groups=('106,118,209,115,122,114,230' '119,109,220,112,101,215,124' '203,207,208,223,116,205,108')
for k in 0 1 2; do
  val=${groups[$k]} scored=${groups[$(((k + 1) % 3))]} rest=${groups[$(((k + 2) % 3))]}
  python main.py task=classification model=resnet1d data=ecg "data.ds1_records=[$rest,201,$val]" \
    "data.val_records=[$val]" "data.ds2_records=[$scored]" trainer.max_epochs="${EPOCHS:-4}" \
    trainer.patience=null \
    hydra.run.dir="$root/$name/fold$k" "$@"
done
