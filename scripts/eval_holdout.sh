#!/usr/bin/env bash
# One-pass evaluation on the 12-sequence holdout of configs/splits/train_holdout.json (train-internal: for
# choosing schedules, variants and settings; the shared val split is never used for that), in results/holdout.
#   scripts/eval_holdout.sh LABEL TRACKER WEIGHTS|- [--set K=V ...]
#   gradtrack report results/holdout --compare LABEL_A LABEL_B
# (environment: WORKERS, default 2; GRADTRACK, default .venv/bin/gradtrack; R, default results/holdout)
set -euo pipefail
cd "$(dirname "$0")/.."
label=$1 tracker=$2 weights=$3; shift 3
G=${GRADTRACK:-.venv/bin/gradtrack}
seqs=$(python3 -c "import json; print(','.join(json.load(open('configs/splits/train_holdout.json'))['holdout']))")
w=()
[ "$weights" != - ] && w=(--weights "$weights")
"$G" eval --tracker "$tracker" "${w[@]}" --label "$label" "$@" --dataset folder --root ../shared/data/sequences \
  --sequences "$seqs" --results "${R:-results/holdout}" --workers "${WORKERS:-2}" -q
