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
  local w=()
  if [ "$weights" != - ]; then
    [ -f "$weights" ] || { echo "skip $label: no $weights"; return; }
    w=(--weights "$weights")
  fi
  "$G" eval --tracker "$tracker" "${w[@]}" --label "$label" "$@" "${E[@]}" --json "$R/../val_$label.json"
}
ev nanotrack -
ev opencv_csrt -
ev opencv_kcf -
ev siamfc -
ev gradnet -
ev gradnet_wo_u - --set online_update=false
ev gradnet_paper - --set fusion=paper
ev gradnet_wo_m runs/gradnet_ft_wo_m/final.pt
ev gradnet_wo_mg runs/gradnet_ft_wo_mg/final.pt
ev gradnet_w2u runs/gradnet_ft_w2u/final.pt
ev siammlg -
ev siammlg_boxhead - --set box_source=boxhead
ev siammlg_sk runs/siammlg_base_cpu/final.pt --set gradient_update=false
ev siammlg_sk_boxhead runs/siammlg_base_cpu/final.pt --set gradient_update=false --set box_source=boxhead
ev siammlg_gradient runs/siammlg_gradient_update_cpu/final.pt
ev siammlg_gradient_boxhead runs/siammlg_gradient_update_cpu/final.pt --set box_source=boxhead
ev siammlg_resnet34 runs/siammlg_gradient_base_cpu/final.pt --set gradient_update=false
ev siammlg_resnet34_boxhead runs/siammlg_gradient_base_cpu/final.pt --set gradient_update=false --set box_source=boxhead
# two reports: all trackers with the GradNet ablations, and the SiamMLG variants beside SiamFC/GradNet
"$G" report "$R" --out "${REPORT:-docs/results}" \
  --trackers nanotrack,opencv_csrt,opencv_kcf,siamfc,gradnet,gradnet_wo_u,gradnet_paper,gradnet_wo_m,gradnet_wo_mg,gradnet_w2u,siammlg,siammlg_boxhead
"$G" report "$R" --out "${REPORT:-docs/results}/siammlg" \
  --trackers siamfc,gradnet,siammlg,siammlg_boxhead,siammlg_sk,siammlg_sk_boxhead,siammlg_gradient,siammlg_gradient_boxhead,siammlg_resnet34,siammlg_resnet34_boxhead
