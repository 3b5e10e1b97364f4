#!/usr/bin/env bash
# Quick start 1: set up, then run the main job (10 heterogeneous clients on the embedded default).
# Optional arguments: run-config overrides, then the federation config, e.g.
#   scripts/main.sh "num-server-rounds=3 seed=1" "num-supernodes=10 client-resources-num-cpus=2"
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/flwr_run.sh "work-dir='$PWD/work' ${1:-}" ${2:+"$2"}
echo "semfed: run directories are in $PWD/work/runs (newest: $(ls -td "$PWD"/work/runs/*/ | head -1))"
