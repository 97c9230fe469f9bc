#!/usr/bin/env bash
# Create .venv and install hyco-ray with its test tools. Keeps an existing torch (e.g. a CUDA
# build); where none is present, installs torch 2.13.0 first (the CPU build on CPU-only hosts
# that provide it locally; pip's default build elsewhere).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
python -c "import torch" 2>/dev/null || python -m pip install -q "torch==2.13.0"
python -m pip install -q -e ".[test]"
python -c "import torch, phi, ray, optuna; print(f'hyco-ray env: torch {torch.__version__}, phiflow {phi.__version__}, ray {ray.__version__}, optuna {optuna.__version__}')"
