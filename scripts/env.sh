# Sourced by the scripts: offline-safe Flower/Ray settings and the project's virtual environment on PATH.
SEMFED_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PATH="$SEMFED_ROOT/.venv/bin:$PATH"
export FLWR_HOME="${FLWR_HOME:-$SEMFED_ROOT/.flwrhome}"
export FLWR_TELEMETRY_ENABLED=0
export FLWR_DISABLE_UPDATE_CHECK=1
export FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION=1   # offline: never `uv sync` the app per run
export RAY_TMPDIR="${RAY_TMPDIR:-/tmp/semfed-ray}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
