#!/usr/bin/env bash
# Create .venv and install hyco-ray with its test tools. A torch the invoking python already has
# (e.g. a CUDA build) is kept: the venv then sees the system site-packages. Where there is none,
# installs torch 2.13.0 first (the CPU build on CPU-only hosts that provide it locally; pip's
# default build elsewhere).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    if "$PY" -c "import torch" 2>/dev/null; then
        echo "keeping torch $("$PY" -c 'import torch; print(torch.__version__)') of $PY (venv with --system-site-packages)"
        "$PY" -m venv --system-site-packages .venv
    else
        "$PY" -m venv .venv
    fi
fi
. .venv/bin/activate
python -m pip install -q --upgrade pip
python -c "import torch" 2>/dev/null || python -m pip install -q "torch==2.13.0"
python -m pip install -q -e ".[test]"
python -c "import torch, phi, ray, optuna; print(f'hyco-ray env: torch {torch.__version__}, phiflow {phi.__version__}, ray {ray.__version__}, optuna {optuna.__version__}')"
