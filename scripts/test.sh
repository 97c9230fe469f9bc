#!/usr/bin/env bash
# Set up (scripts/setup.sh), lint, and run the whole test suite (slow tests included) with
# line coverage of src/hyco. pytest's exit code 5 (no tests collected) fails this script.
# Two pytest workers by default (HYCO_TEST_WORKERS; 0 runs in this process): each test file stays on
# one worker (--dist loadfile), so a module's shared Ray and sweep fixtures are made once.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
ruff check .
python -m pytest -n "${HYCO_TEST_WORKERS:-2}" --dist loadfile -ra --durations=15 --cov=hyco --cov-report=term --cov-fail-under=80 "$@"
