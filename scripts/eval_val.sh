#!/usr/bin/env bash
# The val-split evaluation behind the README's Results tables (one-pass, got10k conventions), in
# results/val (resumable: finished sequences are skipped), then the reports in docs/results (REPORT=DIR).
# Ablation runs missing from runs/ are skipped with a note.  Usage: scripts/eval_val.sh [RESULTS_DIR]
# (environment: WORKERS, default 2; GRADTRACK, default .venv/bin/gradtrack)
set -uo pipefail
cd "$(dirname "$0")/.."
R=${1:-results/val}
G=${GRADTRACK:-.venv/bin/gradtrack}
E=(--dataset folder --root ../shared/data/sequences --split val --results "$R" --workers "${WORKERS:-2}" -q)
ev() {  # ev LABEL WEIGHTS|- [--set K=V ...] ; tracker name from the label's first word
  local label=$1 weights=$2; shift 2
  local tracker=${label%%_*}
  [ "$tracker" = opencv ] && tracker=$label
  case $label in siamfc_effnet*) tracker=siamfc_effnet ;; esac
  local w=()
  if [ "$weights" != - ]; then
    [ -f "$weights" ] || { echo "skip $label: no $weights"; return; }
    w=(--weights "$weights")
  fi
  "$G" eval --tracker "$tracker" "${w[@]}" --label "$label" "$@" "${E[@]}" --json "$R/../val_$label.json"
}
ev nanotrack -
ev opencv_csrt -
# fp32 rows pinned (the default "auto" is bf16 on AVX512-BF16/AMX CPUs), then the bf16 rows (issue 11)
ev siamfc - --set precision=fp32
ev siamfc_effnet - --set precision=fp32
ev gradnet - --set precision=fp32
ev gradnet_noupd - --set precision=fp32 --set online_update=false
ev gradnet_effnet runs/gradnet_effnet/final.pt
# SiamMLG on EfficientNet-Lite0 (shipped: 3,600 steps) and its ablations (same recipe; paper Table 3 names)
ev siammlg - --set precision=fp32
ev siammlg_noupd - --set precision=fp32 --set gradient_update=false
ev siammlg_boxhead - --set precision=fp32 --set box_source=boxhead
ev siammlg_sk runs/siammlg_effnet_cont/final.pt --set gradient_update=false
ev siammlg_backbone runs/siammlg_effnet_ablation_backbone/final.pt --set gradient_update=false
# reduced precision (issue 11: bf16 within 0.01 AUC of fp32?)
ev siamfc_bf16 - --set precision=bf16
ev gradnet_bf16 - --set precision=bf16
ev siamfc_effnet_bf16 - --set precision=bf16
ev siammlg_bf16 - --set precision=bf16
"$G" report "$R" --out "${REPORT:-docs/results}" \
  --trackers nanotrack,opencv_csrt,siamfc,siamfc_effnet,gradnet,gradnet_noupd,siammlg,siammlg_noupd,siammlg_boxhead,siammlg_sk
