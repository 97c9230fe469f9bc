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
# 3. a 4-trial sweep of burgers_full (3 epochs, FIFO) at 0.25 GPU per trial (4 at once) against the
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

echo "== epoch breakdown on the GPU"
timeout 270 "$PY" bench/epoch.py --device cuda --problems burgers_full,heat_full,smoke_full --epochs 1 \
  --out bench/results/epoch_gpu.json

echo "== sweep throughput: 4 trials at 0.25 GPU (4 at once) vs 1 GPU (1 at a time)"
timeout 240 "$PY" - <<'EOF'
import json, logging, os, tempfile, time, warnings
from pathlib import Path

import yaml

warnings.filterwarnings("ignore")
logging.basicConfig(level=logging.WARNING)
import ray

from hyco_ray.analysis import load_sweep
from hyco_ray.space import parse_space, validate_space
from hyco_ray.sweep import connect_ray, run_sweep

space = yaml.safe_load(Path("search_spaces/burgers_full.yaml").read_text())
tmp = Path(tempfile.mkdtemp(prefix="hyco-gpu-"))
walls = {}
connect_ray(None, os.cpu_count())
try:
    for name, gpu, concurrent in (("quarter", 0.25, 4), ("whole", 1, 1)):
        data = {**space, "name": name, "num_samples": 4, "max_concurrent": concurrent, "storage_path": str(tmp),
                "scheduler": {"type": "fifo"}, "searcher": {"type": "optuna", "sampler": "random", "seed": 0, "storage": None},
                "resources": {"cpu": max(1, (os.cpu_count() or 4) // 4 - 1), "gpu": gpu}, "max_failures": 0}
        data["space"] = {k: v for k, v in space["space"].items() if k != "trainer_params.warmup_epochs"}
        data["overrides"] = [o for o in space["overrides"] if not o.startswith("trainer_params.epochs")] + [
            "trainer_params.epochs=3", "trainer_params.warmup_epochs=1", f"data.cache_dir={tmp / 'cache'}"]
        spec = validate_space(parse_space(data, where="gpu_check"))
        tic = time.perf_counter()
        outcome = run_sweep(spec)
        walls[name] = time.perf_counter() - tic
        devices = {r.get("device") for t in load_sweep(outcome.experiment_dir).trials for r in t.history}
        assert devices == {"cuda"}, f"trials ran on {devices}, not the GPU"
finally:
    ray.shutdown()
ratio = walls["whole"] / walls["quarter"]
print(f"4 trials: 0.25 GPU each {walls['quarter']:.1f} s, 1 GPU each {walls['whole']:.1f} s; "
      f"throughput ratio {ratio:.2f}x (target >= 2.5x)")
Path("bench/results").mkdir(parents=True, exist_ok=True)
Path("bench/results/gpu_sweep.json").write_text(json.dumps(
    {"throughput_ratio": ratio, "wall_s": walls, "date": time.strftime("%Y-%m-%d %H:%M")}, indent=2) + "\n")
EOF
echo "== gpu_check done in $(( $(date +%s) - START )) s"
