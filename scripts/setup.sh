#!/usr/bin/env bash
# Create .venv (Python 3.11) with torch/torchvision and semfed's dependencies; a no-op when up to date.
set -euo pipefail
cd "$(dirname "$0")/.."
stamp=".venv/.semfed-installed"
want="$(sha256sum pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then exit 0; fi
echo "semfed: setting up .venv (torch, flwr, ray, transformers, torch-geometric; a few minutes)"
[ -x .venv/bin/python ] || python3.11 -m venv .venv
.venv/bin/pip install -q --upgrade pip
# torch/torchvision pair that installs from this machine's local disk (CUDA build, runs on CPU too)
.venv/bin/pip install -q torch==2.14.1 torchvision==0.29.1
.venv/bin/pip install -q -e ".[test]"
echo "$want" > "$stamp"
