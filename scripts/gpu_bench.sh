#!/usr/bin/env bash
# GPU speed table in one command (< 5 minutes on one GPU): device, driver and library versions, then
# `gradtrack bench` on CUDA for siamfc, gradnet and siammlg in fp32, fp16 and bf16, written as Markdown.
#
#   scripts/gpu_bench.sh [OUT.md]          # default out/gpu_bench.md; FRAMES=100 REPEATS=3 DEVICE=cuda:0
#
# The frames are preloaded on the host; each update crops on the CPU (OpenCV), uploads the three crops and
# reads the box back (one host sync per frame).  Numbers are single-stream fps (median of the repeats).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-out/gpu_bench.md}
FRAMES=${FRAMES:-100}
REPEATS=${REPEATS:-3}
DEVICE=${DEVICE:-cuda}
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python
mkdir -p "$(dirname "$OUT")"
"$PY" - <<'PYEOF' || { echo "gpu_bench: CUDA is not available to torch here" >&2; exit 2; }
import sys, torch
sys.exit(0 if torch.cuda.is_available() else 1)
PYEOF
{
  echo "# gradtrack GPU speed ($(date -u +%Y-%m-%dT%H:%MZ))"
  echo
  echo '```'
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>/dev/null || echo "nvidia-smi unavailable"
  "$PY" -c "import torch, platform; print('torch', torch.__version__, '| CUDA', torch.version.cuda, '| cuDNN', torch.backends.cudnn.version(), '| GPU', torch.cuda.get_device_name(0), '| python', platform.python_version())"
  echo "git $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
  echo '```'
} > "$OUT"
for PREC in fp32 fp16 bf16; do
  echo "== $PREC" >&2
  {
    echo
    echo "## $PREC, $FRAMES frames, $REPEATS repeats"
    echo
    echo "Command: \`gradtrack bench --device $DEVICE --precision $PREC --tracker siamfc --tracker gradnet --tracker siammlg --frames $FRAMES --repeats $REPEATS\`"
    echo
  } >> "$OUT"
  "$PY" -m gradtrack bench --device "$DEVICE" --precision "$PREC" --tracker siamfc --tracker gradnet \
      --tracker siammlg --frames "$FRAMES" --repeats "$REPEATS" --markdown "$OUT.$PREC" --json "${OUT%.md}.$PREC.json"
  cat "$OUT.$PREC" >> "$OUT"
  rm -f "$OUT.$PREC"
done
echo "wrote $OUT" >&2
cat "$OUT"
