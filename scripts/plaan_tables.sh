#!/usr/bin/env bash
# PLAAN's tables (docs/results.md, "EmoPain (PLAAN)"): one `lbp sweep` per table, then
# leave-one-subject-out for the final model and the ANOVA across models. Everything is
# resumable: rerun the same command to finish what an interruption left.
#
#   scripts/plaan_tables.sh [OUT_DIR [JOBS]] [lbp options for every run...]
#   scripts/plaan_tables.sh runs/plaan 8                       # a GPU: 8 runs at a time
#   scripts/plaan_tables.sh runs/plaan 2 --trainer.max_epochs 30   # 2 CPU cores, shortened
#
# Each table is OUT_DIR/<list>/results.md (the metrics of the list's `columns`); set
# OMP_NUM_THREADS to cores / JOBS. With PLAAN_ONLY="list1 list2" only those lists run.
set -euo pipefail
out=${1:-runs/plaan}
jobs=${2:-1}
shift $(($# < 2 ? $# : 2))
lbp=${LBP:-lbp}
lists=${PLAAN_ONLY:-"network_comparison balancing_pain balancing_protective sota_pain sota_protective cascade_comparison segment_length loso anova"}

# cv_once DIR NAME CONFIG FOLDS [options]: one `lbp cv` into DIR/NAME/version_N: skipped
# when it finished (summary.json), finished with --resume when it was interrupted
cv_once() {
  local dir=$1 name=$2 config=$3 folds=$4; shift 4
  local last
  last=$(ls -d "$dir/$name/version_"* 2>/dev/null | sort -V | tail -1 || true)
  if [[ -n $last && -f $last/summary.json ]]; then
    echo "plaan_tables: $last finished before; skipping"
  elif [[ -n $last ]]; then
    $lbp cv --config "$config" --folds "$folds" --resume "$last" "$@"
  else
    $lbp cv --config "$config" --folds "$folds" --out_dir "$dir" --name "$name" "$@"
  fi
  ls -d "$dir/$name/version_"* | sort -V | tail -1 > "$dir/$name.last"
}

for list in $lists; do
  case $list in
    segment_length)  # the ablation over segment length, one W&B grid sweep per model
      for model in "" _lstm_dnn _anomaly; do
        $lbp sweep "experiments/sweeps/emopain_segment_length$model.yaml" --jobs "$jobs" --out_dir "$out" "$@"
      done  # and the LSTM-DNN at an equal number of optimiser steps per length
      $lbp sweep experiments/emopain/sweeps/segment_length_steps.yaml --jobs "$jobs" --out_dir "$out" "$@" ;;
    loso)  # leave-one-subject-out for the final model (one fold per participant)
      cv_once "$out/loso" pain_lstm_dnn-loso experiments/emopain/pain_lstm_dnn.yaml loso "$@" ;;
    anova)  # one-way ANOVA of 5-fold test accuracy across the pain models
      dirs=()
      for config in pain_lstm_dnn pain_attention_lstm anomaly/pain_loss hierarchical; do
        name=$(basename "$config")-cv5
        cv_once "$out/anova" "$name" "experiments/emopain/$config.yaml" 5 "$@"
        dirs+=("$(cat "$out/anova/$name.last")")
      done
      $lbp analyze anova "${dirs[@]}" --metric test/accuracy --out_dir "$out/anova" ;;
    *)
      $lbp sweep "experiments/emopain/sweeps/$list.yaml" --jobs "$jobs" --out_dir "$out" "$@" ;;
  esac
done
