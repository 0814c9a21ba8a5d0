#!/usr/bin/env bash
# Train SiamFC, then GradNet on top of it, then export both as fp16 weights with model cards.
#
#   scripts/train_all.sh [SIAMFC_UNTIL] [GRADNET_UNTIL]      e.g. scripts/train_all.sh 13:40 14:05
#
# Times are UTC wall-clock deadlines (anything `date -d` reads); without them each stage runs its whole
# schedule (configs/siamfc_cpu.yaml, configs/gradnet_cpu.yaml).  Every stage runs with --resume, so
# re-running the script continues from runs/siamfc/last.pt and runs/gradnet/last.pt; a stage whose
# schedule is complete (final.pt exists) is skipped.  Run it detached:
#
#   setsid nohup scripts/train_all.sh 13:40 14:05 > runs/train_all.log 2>&1 &
#
# Environment: PY (python, default .venv/bin/python), SIAMFC_CONFIG, GRADNET_CONFIG, WEIGHTS (output
# folder, default src/gradtrack/weights), HARDWARE (text for the model cards).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
SIAMFC_CONFIG=${SIAMFC_CONFIG:-configs/siamfc_cpu.yaml}
GRADNET_CONFIG=${GRADNET_CONFIG:-configs/gradnet_cpu.yaml}
WEIGHTS=${WEIGHTS:-src/gradtrack/weights}
HARDWARE=${HARDWARE:-"$(nproc)-core CPU ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'))"}
mkdir -p runs "$WEIGHTS"

# seconds left until a deadline, or empty (no deadline)
left() {
  [ -z "${1:-}" ] && { echo ""; return; }
  echo $(( $(date -u -d "$1" +%s) - $(date -u +%s) ))
}

stage() {  # stage NAME CONFIG RUN_DIR DEADLINE
  local name=$1 config=$2 run=$3 until=${4:-}
  if [ -f "$run/final.pt" ]; then
    echo "[$(date -u +%T)] $name: schedule complete ($run/final.pt), not training"
    return 0
  fi
  local secs; secs=$(left "$until")
  local limit=()
  if [ -n "$secs" ]; then
    if [ "$secs" -le 60 ]; then
      echo "[$(date -u +%T)] $name: deadline $until passed, not training"
      return 0
    fi
    limit=(--time-limit "$secs")
  fi
  echo "[$(date -u +%T)] $name: training ($config -> $run) ${limit[*]}"
  "$PY" -m gradtrack.training.cli train "$config" --resume --out "$run" --no-progress "${limit[@]}"
}

export_weights() {  # export_weights RUN_DIR NAME
  local run=$1 name=$2
  if [ -f "$run/last.pt" ] || [ -f "$run/final.pt" ]; then
    echo "[$(date -u +%T)] exporting $run -> $WEIGHTS/$name.pt"
    "$PY" -m gradtrack.training.export "$run" "$WEIGHTS/$name.pt" --card "$WEIGHTS/$name.md" --hardware "$HARDWARE"
  fi
}

stage siamfc "$SIAMFC_CONFIG" runs/siamfc "${1:-}"
export_weights runs/siamfc siamfc
stage gradnet "$GRADNET_CONFIG" runs/gradnet "${2:-}"
export_weights runs/gradnet gradnet
echo "[$(date -u +%T)] done"
