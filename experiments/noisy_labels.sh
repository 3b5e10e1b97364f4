#!/usr/bin/env bash
# The paper's noisy-label case study (seed 000 V-D, Fig. 4) on the embedded default: clean labels,
# then mild (clients 0-4) / severe (clients 5-9) label noise under each labelling ablation.
# Each run is a real `flwr run`; runs whose directory already holds a finished table are skipped.
# Usage: experiments/noisy_labels.sh [seed] [extra run-config]   (then see experiments/label_summary.py)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
seed=${1:-0}
extra=${2:-}
noise="mild:0.2:0-4;severe:0.5:5-9"
declare -A variants=(
  [clean]="label-noise='mild:0.0:0-4;severe:0.0:5-9' label-handling='none'"
  [none]="label-noise='$noise' label-handling='none'"
  [exclusion]="label-noise='$noise' label-handling='exclusion'"
  [local]="label-noise='$noise' label-handling='local'"
  [federated]="label-noise='$noise' label-handling='federated'"
)
for variant in clean none exclusion local federated; do
  name="labels-$variant-seed$seed"
  if [[ -f "work/runs/$name/groups.csv" ]]; then
    echo "semfed: $name already finished, skipping"
    continue
  fi
  rm -rf "work/runs/$name"  # an interrupted run starts over
  bash scripts/flwr_run.sh "work-dir='$PWD/work' run-name='$name' seed=$seed ${variants[$variant]} $extra"
done
.venv/bin/python experiments/label_summary.py work/runs/labels-{clean,none,exclusion,local,federated}-seed"$seed"
