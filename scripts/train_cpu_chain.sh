#!/usr/bin/env bash
# Train a list of configs one after another (each with --resume, skipping those whose run has final.pt),
# the way the shipped SiamMLG weights and the CPU ablations were trained on a 2-core machine:
#
#   setsid nohup scripts/train_cpu_chain.sh configs/siammlg_base_cpu.yaml configs/siammlg_update_cpu.yaml \
#       > runs/chain.log 2>&1 &
#
# Re-running the same command continues where it stopped.  Environment: PY (default .venv/bin/python).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
mkdir -p runs
for config in "$@"; do
  # the resolved config (bases composed) says where the run goes
  run=$("$PY" -m gradtrack.cli train "$config" --print-config | "$PY" -c "import sys, yaml; print(yaml.safe_load(sys.stdin)['out'])")
  if [ -f "$run/final.pt" ]; then
    echo "[$(date -u +%T)] $config: schedule complete ($run/final.pt), not training"
    continue
  fi
  echo "[$(date -u +%T)] $config -> $run"
  "$PY" -m gradtrack.cli train "$config" --resume --no-progress
  echo "[$(date -u +%T)] $config done"
done
