#!/usr/bin/env bash
# Quick start 1: set up, then run the main job (10 heterogeneous clients on the embedded default).
# Extra arguments are run-config overrides, e.g.  scripts/main.sh "num-server-rounds=3 seed=1"
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/flwr_run.sh "work-dir='$PWD/work' ${1:-}"
echo "semfed: run directories are in $PWD/work/runs (newest: $(ls -td "$PWD"/work/runs/*/ | head -1))"
