#!/usr/bin/env bash
# Run the semfed app as a Flower simulation on a managed local SuperLink, stream its log,
# and exit non-zero unless the run finished completed. Stops the SuperLink if it started it.
#   scripts/flwr_run.sh "<run-config overrides>" "<federation-config>"
# The run config is checked first (scripts/check_config.py: one line naming the key, exit 2, nothing
# submitted). Without num-supernodes in the federation config, the run config's count is used (one
# SuperNode per client profile, or per D-JSCC decoder).
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$SEMFED_ROOT"
run_config="${1:-}"
federation_config="${2:-client-resources-num-cpus=1}"
nodes="$(python scripts/check_config.py --supernodes "$run_config")" || exit 2
[[ "$federation_config" == *num-supernodes* ]] || federation_config="num-supernodes=$nodes $federation_config"
gpu_visible() {  # nvidia-smi lists a GPU that CUDA_VISIBLE_DEVICES does not hide (asking torch costs a 4 s import)
  [[ "${CUDA_VISIBLE_DEVICES-all}" != "" && "${CUDA_VISIBLE_DEVICES-all}" != "-1" ]] &&
    nvidia-smi -L 2>/dev/null | grep -q '^GPU '
}
if [[ "$federation_config" != *num-gpus* ]] && gpu_visible; then
  federation_config+=" client-resources-num-gpus=0.2"  # five virtual clients share each GPU
fi
port="${FLWR_LOCAL_SUPERLINK_HTTP_API_PORT:-39091}"
healthy() { python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$port/health', timeout=1)" 2>/dev/null; }
owned=""
control_port="${FLWR_LOCAL_CONTROL_API_PORT:-39093}"
start_superlink() {  # the managed local SuperLink `flwr run` would start (same flags), given as long as a busy machine
  # needs to come up: `flwr run` waits only 15 s (measured 15+ s beside a test suite), then finds it up and uses it
  local dir="$FLWR_HOME/local-superlink" wait_s="${SEMFED_SUPERLINK_START_S:-180}"
  mkdir -p "$dir"
  flower-superlink --insecure --simulation --isolation subprocess --control-api-address "127.0.0.1:$control_port" \
    --host 127.0.0.1 --port "$port" --log-file "$dir/superlink.log" --database "$dir/state.db" \
    </dev/null >/dev/null 2>&1 &
  local deadline=$((SECONDS + wait_s))
  while ((SECONDS < deadline)); do healthy && return 0; sleep 0.2; done
  echo "semfed: the local SuperLink did not answer on 127.0.0.1:$port within ${wait_s} s; see $dir/superlink.log" >&2
  return 1
}
run_id="" status="" app=""
cleanup() {  # interrupted: stop the run (it would go on inside the SuperLink); then our SuperLink and the
  # run's flwr-simulation process, which outlives it (TERM stops its Ray too). Never changes the exit status.
  if [ -n "$run_id" ] && [ -z "$status" ]; then flwr stop "$run_id" >/dev/null 2>&1 || true; fi
  if [ -n "$app" ] && [ "$app" != "$SEMFED_ROOT" ]; then rm -rf "$app"; fi
  if [ -n "$owned" ]; then
    pkill -f "flower-superlink.*--port $port( |$)" || true
    pkill -f "flwr-simulation --runtime-api-address 127.0.0.1:$port( |$)" || true
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
healthy || { owned=1; start_superlink; }  # a SuperLink we start is ours: stop it when done
app="$(python scripts/stage_app.py)"  # the FAB's files alone: `flwr run .` would walk .venv and work/ first
args=(run "$app" --format json --federation-config "$federation_config")
[ -n "$run_config" ] && args+=(--run-config "$run_config")
submitted="$(flwr "${args[@]}")" || { echo "$submitted" >&2; exit 1; }
run_id="$(python -c 'import json,sys; d=json.load(sys.stdin); print(d.get("run-id", ""))' <<<"$submitted")"
[ -n "$run_id" ] || { echo "flwr run did not start a run: $submitted" >&2; exit 1; }
echo "semfed: Flower run $run_id submitted; streaming its log"
flwr log "$run_id" --stream &  # in the background so that INT/TERM reach the trap at once
wait $! || true
status="$(flwr list --run-id "$run_id" --format json | python -c 'import json,sys; print(json.load(sys.stdin)["runs"][0]["status"])')"
echo "semfed: run $run_id $status"
[ "$status" = "finished:completed" ]
