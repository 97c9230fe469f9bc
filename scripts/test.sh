#!/usr/bin/env bash
# Set up (scripts/setup.sh), lint, and run the whole test suite (slow tests included) with
# line coverage of src/hyco. pytest's exit code 5 (no tests collected) fails this script.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
ruff check .
python -m pytest -ra --durations=15 --cov=hyco --cov-report=term --cov-fail-under=80 "$@"
