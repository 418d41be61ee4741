#!/usr/bin/env bash
# The self-supervised method zoo (issue 5). Every method x seed is pretrained once without labels,
#   - on MIT-BIH: the DS1 training records (data=ecg), evaluated on the DS2 AAMI beat classes with
#     the frozen encoder: linear and knn at label fractions 1.0 and 0.01;
#   - on UCR ECG200: the official TRAIN split, evaluated on TEST with svm, linear and knn;
# then the table (macro-F1, accuracy mean ± std over seeds, pretraining seconds) is printed and
# written to <root>/summary.md by scripts/ssl/summarise_ssl.py.
# "random" is the randomly initialised, frozen shared encoder (model=simclr, 0 training steps).
#
#   DATA_DIR=/path/to/data bash scripts/ssl/benchmark.sh [extra hydra overrides, e.g. trainer.device=cuda]
#   METHODS=random,simclr SEEDS=0 DATASETS=ecg200 bash scripts/ssl/benchmark.sh trainer.max_steps=50
#
# Each evaluation is its own run directory holding a copy of the pretraining run's last.pt and
# ++task.train=false, so the encoder is pretrained once per method and seed.
set -uo pipefail
cd "$(dirname "$0")/../.."
METHODS=${METHODS-random,simclr,moco,byol,simsiam,dino,instdisc,hybrid,cpc,tfc,comet,mae,wav2vec2,ts2vec,timesurl}
SEEDS=${SEEDS-0,1,2}
DATASETS=${DATASETS-ecg,ecg200}
ECG_EVALS=${ECG_EVALS-knn:0.01 knn:1.0 linear:1.0 linear:0.01}
ECG200_EVALS=${ECG200_EVALS-knn:1.0 svm:1.0 linear:1.0}
ROOT=${ROOT-outputs/ssl_benchmark/$(date +%Y-%m-%d_%H-%M-%S)}
failed=()

run_one() {   # run_one <dataset tag> <method> <seed> <extra hydra overrides...>
  local tag=$1 method=$2 seed=$3; shift 3
  local model=$method data_args evals extra=()
  if [ "$method" = random ]; then model=simclr; extra=(trainer.max_steps=0); fi
  case $tag in
    ecg) data_args=(data=ecg); evals=$ECG_EVALS ;;
    ecg200) data_args=(data=ucr data.name=ECG200); evals=$ECG200_EVALS ;;
    *) echo "unknown dataset tag $tag (use ecg, ecg200)"; return 1 ;;
  esac
  local base=$ROOT/$tag/$method/seed$seed pretrain_dir="" secs=0 first=1
  for ev in $evals; do
    local proto=${ev%%:*} frac=${ev##*:} dir=$base/${ev/:/_}
    local args=(model=$model "${data_args[@]}" seed=$seed task.protocol=$proto
                task.label_fraction=$frac trainer.progress=false hydra.run.dir=$dir)
    if [ $first = 1 ]; then   # the pretraining run (its own evaluation is the first one)
      local t0=$(date +%s.%N)
      python main.py "${args[@]}" "$@" "${extra[@]}" || { failed+=("$tag/$method/seed$seed"); return 0; }
      secs=$(python -c "import time; print(round(time.time() - $t0, 1))")
      pretrain_dir=$dir; first=0
    else
      mkdir -p "$dir/checkpoints"
      [ -f "$pretrain_dir/checkpoints/last.pt" ] && cp "$pretrain_dir/checkpoints/last.pt" "$dir/checkpoints/"
      python main.py "${args[@]}" ++task.train=false "$@" "${extra[@]}" || { failed+=("$tag/$method/seed$seed/$ev"); continue; }
    fi
    printf '{"data": "%s", "method": "%s", "seed": %s, "protocol": "%s", "label_fraction": %s, "pretrain_seconds": %s}\n' \
      "$tag" "$method" "$seed" "$proto" "$frac" "$secs" > "$dir/benchmark.json"
  done
}

for tag in ${DATASETS//,/ }; do
  for method in ${METHODS//,/ }; do
    for seed in ${SEEDS//,/ }; do
      run_one "$tag" "$method" "$seed" "$@"
    done
  done
done
python scripts/ssl/summarise_ssl.py "$ROOT"
if [ ${#failed[@]} -gt 0 ]; then
  echo "failed runs (see their run directories under $ROOT): ${failed[*]}"
  exit 1
fi
