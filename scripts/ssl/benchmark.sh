#!/usr/bin/env bash
# The self-supervised method zoo. Every method x seed is pretrained once without labels,
#   - on MIT-BIH: the DS1 training records (data=ecg), evaluated on the DS2 AAMI beat classes with
#     the frozen encoder: linear and knn at label fractions 1.0 and 0.01;
#   - on UCR ECG200: the official TRAIN split, evaluated on TEST with svm, linear and knn;
# then the table (macro-F1, accuracy mean ± std over seeds, pretraining seconds) is printed and
# written to <root>/summary.md by scripts/ssl/summarise_ssl.py, with each method's macro-F1 gain
# over the random encoder of its architecture.
# "random" is the randomly initialised, frozen shared encoder (model=simclr, 0 training steps);
# "random-<model>" the same for another architecture (e.g. random-ts2vec).
#
#   DATA_DIR=/path/to/data bash scripts/ssl/benchmark.sh [extra hydra overrides, e.g. trainer.device=cuda]
#   METHODS=random,simclr SEEDS=0 DATASETS=ecg200 bash scripts/ssl/benchmark.sh trainer.max_steps=50
#
# One run per dataset, method and seed: the first evaluation is task.protocol, the others go in
# task.evaluations (the same frozen encoder, every split encoded once; metrics.json "evaluations").
#
# PRETRAINED_ROOT=<an earlier ROOT> evaluates that benchmark's saved encoders again instead of
# pretraining (task.pretrained=<its run>/checkpoints/last.pt; random rows are rebuilt), e.g.
#   PRETRAINED_ROOT=outputs/ssl_benchmark/<stamp> ECG_EVALS=linear:1.0 DATASETS=ecg \
#       bash scripts/ssl/benchmark.sh task.append_features=false
set -uo pipefail
cd "$(dirname "$0")/../.."
METHODS=${METHODS-random,random-ts2vec,simclr,moco,byol,simsiam,dino,instdisc,hybrid,cpc,tfc,comet,mae,wav2vec2,bert,gpt,ts2vec,timesurl}
SEEDS=${SEEDS-0,1,2}
DATASETS=${DATASETS-ecg,ecg200}
ECG_EVALS=${ECG_EVALS-linear:1.0 linear:0.01 knn:1.0 knn:0.01}
ECG200_EVALS=${ECG200_EVALS-svm:1.0 linear:1.0 knn:1.0}
ROOT=${ROOT-outputs/ssl_benchmark/$(date +%Y-%m-%d_%H-%M-%S)}
failed=()

run_one() {   # run_one <dataset tag> <method> <seed> <extra hydra overrides...>
  local tag=$1 method=$2 seed=$3; shift 3
  local model=$method data_args evals extra=()
  if [ "$method" = random ]; then model=simclr; extra=(trainer.max_steps=0); fi
  if [[ $method == random-* ]]; then model=${method#random-}; extra=(trainer.max_steps=0); fi
  if [ -n "${PRETRAINED_ROOT-}" ] && [[ $method != random* ]]; then
    extra=("task.pretrained=$PRETRAINED_ROOT/$tag/$method/seed$seed/checkpoints/last.pt")
  fi
  case $tag in
    ecg) data_args=(data=ecg); evals=($ECG_EVALS) ;;
    ecg200) data_args=(data=ucr data.name=ECG200); evals=($ECG200_EVALS) ;;
    *) echo "unknown dataset tag $tag (use ecg, ecg200)"; return 1 ;;
  esac
  local dir=$ROOT/$tag/$method/seed$seed first=${evals[0]} rest
  rest=$(IFS=,; echo "${evals[*]:1}")
  # the semi-supervised hybrid pretrains with the labels of its label fraction: the other
  # fractions would evaluate an encoder that saw more labels than they give, so it runs only
  # its first evaluation's fraction
  [ "$method" = hybrid ] && rest=$(IFS=,; for e in "${evals[@]:1}"; do
    [ "${e##*:}" = "${first##*:}" ] && printf '%s,' "$e"; done | sed 's/,$//')
  python main.py model=$model "${data_args[@]}" seed=$seed task.protocol=${first%%:*} \
    task.label_fraction=${first##*:} "task.evaluations=[$rest]" trainer.progress=false \
    hydra.run.dir=$dir "$@" "${extra[@]}" || { failed+=("$tag/$method/seed$seed"); return 0; }
  printf '{"data": "%s", "method": "%s", "seed": %s}\n' "$tag" "$method" "$seed" > "$dir/benchmark.json"
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
