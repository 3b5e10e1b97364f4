#!/usr/bin/env bash
# Quick start 2: set up, then run the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/env.sh
# test files in parallel (each worker has its own SuperLink ports and Ray temp dir: tests/flower_runs.py), the
# TLS cluster test first (tests/conftest.py); SEMFED_TEST_WORKERS=0 runs them one after another
python -m pytest -q -n "${SEMFED_TEST_WORKERS:-3}" --dist loadfile --no-loadscope-reorder "$@"
