#!/usr/bin/env bash
# GPU check (issue 13), for a machine with an NVIDIA GPU and a CUDA build of torch; installs nothing.
#
#   bash bench/gpu_check.sh [python]        (default: .venv/bin/python; about 5-8 minutes)
#
# 1. the card (nvidia-smi) and torch's view of it;
# 2. bench/epoch.py on the GPU for burgers_full, heat_full and smoke_full (the GPU-sized search
#    spaces' base + fixed overrides), one timed epoch each after an untimed one, asserting that the
#    UNet, P's rollouts and PhiFlow's field tensors live on the GPU; peak GPU memory per problem;
#    -> bench/results/epoch_gpu.json
# 3. bench/gpu_sweep.py: a 4-trial sweep of burgers_full (2 epochs, FIFO) at 0.25 GPU per trial (4 at once) against the
#    same 4 trials at 1 GPU per trial (one at a time): throughput ratio, target >= 2.5x;
#    -> bench/results/gpu_sweep.json
# Exit codes: 0 done, 2 no NVIDIA GPU, 3 torch without CUDA, other: a step failed (its output says).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${1:-${PYTHON:-.venv/bin/python}}
export PYTHONPATH="$PWD/src:$PWD${PYTHONPATH:+:$PYTHONPATH}"
START=$(date +%s)

if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "gpu_check: FAILED: no NVIDIA GPU here (nvidia-smi missing or sees no device); nothing was run" >&2
  exit 2
fi
if ! "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "gpu_check: FAILED: $("$PY" -c 'import torch; print("torch", torch.__version__)') sees no CUDA device;" \
       "install a CUDA build of torch (scripts/setup.sh keeps one that is already there)" >&2
  exit 3
fi
echo "== card"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name())"
echo "== date $(date -u +%FT%TZ), load $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) CPUs"

echo "== epoch breakdown on the GPU (one process per problem, so a slow one does not cost the others)"
for problem in burgers_full:80 heat_full:70 smoke_full:150; do
  timeout "${problem#*:}" "$PY" bench/epoch.py --device cuda --problems "${problem%%:*}" --epochs 1 \
    --out "bench/results/epoch_gpu_${problem%%:*}.json" || { echo "gpu_check: epoch ${problem%%:*} failed (exit $?)"; FAILED=1; }
done
"$PY" - <<'EOF_MERGE' || FAILED=1
import json
from pathlib import Path
parts = [json.loads(p.read_text()) for p in sorted(Path("bench/results").glob("epoch_gpu_*.json"))]
merged = {**parts[0], "seconds_per_epoch": {k: v for p in parts for k, v in p["seconds_per_epoch"].items()}} if parts else {}
Path("bench/results/epoch_gpu.json").write_text(json.dumps(merged, indent=2) + "\n")
print("epoch_gpu.json:", sorted(merged.get("seconds_per_epoch", {})))
EOF_MERGE

echo "== sweep throughput: 4 trials at 0.25 GPU (4 at once) vs 1 GPU each (1 at a time)"
timeout 240 "$PY" bench/gpu_sweep.py --space search_spaces/burgers_full.yaml --samples 4 --epochs 2 --fraction 0.25 \
  --out bench/results/gpu_sweep.json || { echo "gpu_check: the sweep step failed (exit $?)"; FAILED=1; }
echo "== gpu_check done in $(( $(date +%s) - START )) s"
exit "${FAILED:-0}"
