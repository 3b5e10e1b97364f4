#!/usr/bin/env bash
# The docker-compose topology as local processes on 127.0.0.1: one SuperLink, N SuperNodes (partition-id
# 0..N-1), a SuperExec running the ServerApp and one SuperExec per SuperNode running its ClientApps
# (`--isolation process`). Runs the semfed app on them with `flwr run`, streams its log, exits non-zero
# unless the run finished completed, and stops every process it started (also on Ctrl-C).
#   scripts/local_cluster.sh [--nodes N] [--port P] [--certs DIR] [--dir DIR] [--insecure] ["<run-config overrides>"]
# TLS and SuperNode authentication are on unless --insecure; certificates and SuperNode keys come from
# scripts/generate_certs.py (--certs, default certs/). Ports: SuperLink P (default 9100), SuperNode i P+1+i.
# The run config is checked first (scripts/check_config.py: one line naming the key, exit 2, nothing
# started). --nodes defaults to the SuperNodes it needs (its client profiles, or D-JSCC decoders) and
# must equal that count.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$SEMFED_ROOT"

nodes="" port=9100 certs="$SEMFED_ROOT/certs" dir="$SEMFED_ROOT/.cluster" insecure=0 run_config=""
while [ $# -gt 0 ]; do
  case "$1" in
    --nodes) nodes="$2"; shift 2 ;;
    --port) port="$2"; shift 2 ;;
    --certs) certs="$(realpath "$2")"; shift 2 ;;
    --dir) dir="$2"; shift 2 ;;
    --insecure) insecure=1; shift ;;
    -*) echo "local_cluster.sh: unknown option $1" >&2; exit 2 ;;
    *) run_config="$1"; shift ;;
  esac
done

needed="$(python scripts/check_config.py --supernodes "$run_config")" || exit 2
nodes="${nodes:-$needed}"
if [ "$insecure" = 0 ]; then
  for f in ca.crt server.pem server.key $(seq -f "supernode-%g.key" 0 $((nodes - 1))) \
           $(seq -f "supernode-%g.pub" 0 $((nodes - 1))); do
    [ -f "$certs/$f" ] || { echo "local_cluster.sh: $certs/$f is missing: run" \
      "'python scripts/generate_certs.py --dir $certs --supernodes $nodes' (or pass --insecure)" >&2; exit 2; }
  done
fi
[ "$nodes" = "$needed" ] || { echo "local_cluster.sh: --nodes $nodes, but the run config needs $needed SuperNodes" \
  "(one per client profile, or per D-JSCC decoder)" >&2; exit 2; }

mkdir -p "$dir"
dir="$(realpath "$dir")"
export FLWR_HOME="$dir/flwr-home"  # this cluster's own CLI config, apps and state
mkdir -p "$FLWR_HOME"
pids=()
stop_all() {  # every process was started as its own process group: stop the groups we made, children included
  for pid in "${pids[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$pid" 2>/dev/null || true
  done
}
trap stop_all EXIT
trap 'exit 130' INT TERM
start() {  # start <log name> <command...>: in the background, in a new process group
  local name="$1"; shift
  setsid "$@" >"$dir/$name.log" 2>&1 &
  pids+=("$!")
}

if [ "$insecure" = 1 ]; then
  link_tls=(--insecure) node_tls=(--insecure) exec_tls=(--insecure) runtime_tls=()
  connection="address = \"127.0.0.1:$port\"
insecure = true"
else
  link_tls=(--ssl-ca-certfile "$certs/ca.crt" --ssl-certfile "$certs/server.pem" --ssl-keyfile "$certs/server.key"
            --enable-supernode-auth)
  node_tls=(--root-certificates "$certs/ca.crt")
  exec_tls=(--root-certificates "$certs/ca.crt")
  runtime_tls=(--ssl-ca-certfile "$certs/ca.crt" --ssl-certfile "$certs/server.pem" --ssl-keyfile "$certs/server.key")
  connection="address = \"127.0.0.1:$port\"
root-certificates = \"$certs/ca.crt\""
fi
cat >"$FLWR_HOME/config.toml" <<EOF
[superlink]
default = "semfed-local"

[superlink.semfed-local]
$connection
EOF

start superlink flower-superlink "${link_tls[@]}" --isolation process --host 127.0.0.1 --port "$port" \
  --database "$dir/state.db" --disable-runtime-dependency-installation
for _ in $(seq 120); do  # `flwr supernode list` answers once the SuperLink's API is up
  flwr supernode list >/dev/null 2>&1 && break
  kill -0 "${pids[0]}" 2>/dev/null || { cat "$dir/superlink.log" >&2; exit 1; }
  sleep 0.5
done
start superexec-serverapp flower-superexec "${exec_tls[@]}" --runtime-api-address "127.0.0.1:$port"
for i in $(seq 0 $((nodes - 1))); do
  auth=()
  if [ "$insecure" = 0 ]; then
    flwr supernode register "$certs/supernode-$i.pub" >/dev/null
    auth=(--auth-supernode-private-key "$certs/supernode-$i.key")
  fi
  node_port=$((port + 1 + i))
  start "supernode-$i" flower-supernode "${node_tls[@]}" "${auth[@]}" "${runtime_tls[@]}" \
    --superlink "127.0.0.1:$port" --isolation process --host 127.0.0.1 --port "$node_port" \
    --node-config "partition-id=$i num-partitions=$nodes"
  start "superexec-clientapp-$i" flower-superexec "${exec_tls[@]}" --runtime-api-address "127.0.0.1:$node_port"
done
online() { flwr supernode list --format json 2>/dev/null |
  python -c 'import json,sys; print(sum(n["status"] == "online" for n in json.load(sys.stdin)["nodes"]))' 2>/dev/null || echo 0; }
for _ in $(seq 120); do
  [ "$(online)" = "$nodes" ] && break
  for pid in "${pids[@]}"; do
    kill -0 "$pid" 2>/dev/null || { echo "local_cluster.sh: a process exited early, see the logs in $dir" >&2; exit 1; }
  done
  sleep 1
done
[ "$(online)" = "$nodes" ] || { echo "local_cluster.sh: $(online)/$nodes SuperNodes online after 120 s (logs: $dir)" >&2; exit 1; }
echo "semfed: SuperLink on 127.0.0.1:$port ($([ "$insecure" = 1 ] && echo insecure || echo TLS + SuperNode auth))," \
     "$nodes SuperNodes, logs in $dir"

rm -rf "$dir/app"  # the FAB's files alone: `flwr run .` would walk .venv and work/ first
args=(run "$(python scripts/stage_app.py --into "$dir/app")" --format json)
[ -n "$run_config" ] && args+=(--run-config "$run_config")
submitted="$(flwr "${args[@]}")" || { echo "$submitted" >&2; exit 1; }
run_id="$(python -c 'import json,sys; print(json.load(sys.stdin).get("run-id", ""))' <<<"$submitted")"
[ -n "$run_id" ] || { echo "flwr run did not start a run: $submitted" >&2; exit 1; }
echo "semfed: Flower run $run_id submitted; streaming its log"
flwr log "$run_id" --stream || true
status="$(flwr list --run-id "$run_id" --format json | python -c 'import json,sys; print(json.load(sys.stdin)["runs"][0]["status"])')"
echo "semfed: run $run_id $status"
[ "$status" = "finished:completed" ]
