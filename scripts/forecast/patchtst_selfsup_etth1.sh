#!/usr/bin/env bash
# PatchTST self-supervised on ETTh1: masked-patch pretraining (input 512, patches 12/12, 40 %
# masked, 10 epochs), then linear probing and fine-tuning from the pretrained backbone,
# horizons 96/192/336/720, seed 0 (Nie et al. 2023, Table 4 reports ETTh1 only for transfer).
#   DATA_DIR=/path/to/data bash scripts/forecast/patchtst_selfsup_etth1.sh [extra hydra overrides]
set -euo pipefail
cd "$(dirname "$0")/../.."
stamp=$(date +%Y-%m-%d_%H-%M-%S)
pre=outputs/patchtst_pretrain_etth1_$stamp
python main.py model=patchtst_pretrain data=ett data.name=ETTh1 trainer.progress=false \
  hydra.run.dir=$pre "$@"
for mode in linear_probe finetune; do
  # linear probing: 20 head-only epochs; fine-tuning: 10 head-only, then 20 of the whole network
  probe=$([ $mode = linear_probe ] && echo "model.freeze_backbone=true model.freeze_epochs=0 trainer.max_epochs=20" || true)
  out=outputs/multirun/patchtst_${mode}_etth1_$stamp
  python main.py -m experiment=patchtst_etth1_finetune model.pretrained=$pre/checkpoints/best.pt \
    $probe \
    data.pred_len=96,192,336,720 trainer.progress=false hydra.sweep.dir=$out "$@"
  python scripts/summarise.py $out --metrics test.mse test.mae
done
