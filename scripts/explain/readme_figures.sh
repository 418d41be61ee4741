#!/usr/bin/env bash
# Remake the saliency figures shown in docs/results-explanations.md: train the plain MIT-BIH
# classifier (no mixup, as they were made), explain 100 DS2 beats per class, copy the first N, S
# and V figures and the class profiles into scripts/explain/figures/.
#   DATA_DIR=/path/to/data bash scripts/explain/readme_figures.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
out=outputs/readme_figures/$(date +%Y-%m-%d_%H-%M-%S)
run=$out/classifier
python main.py task=classification model=resnet1d data=ecg trainer.mixup_alpha=0 trainer.progress=false \
  hydra.run.dir=$run
python main.py task=explain model=resnet1d data=ecg task.checkpoint=$run/checkpoints/best.pt \
  task.samples_per_class=100 trainer.progress=false hydra.run.dir=$out/explain
for c in N S V; do cp "$(ls $out/explain/explain/${c}_0_*.png | head -1)" scripts/explain/figures/; done
cp $out/explain/explain/class_profiles.png scripts/explain/figures/
