#!/usr/bin/env bash
# Create .venv (Python 3.11) with torch/torchvision and semfed's dependencies; a no-op when up to date.
set -euo pipefail
cd "$(dirname "$0")/.."
stamp=".venv/.semfed-installed"
want="$(sha256sum pyproject.toml scripts/setup.sh scripts/uv_install.py | sha256sum | cut -c1-16)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then exit 0; fi
echo "semfed: setting up .venv (torch, flwr, ray, transformers, torch-geometric; a few minutes)"
[ -x .venv/bin/python ] || python3.11 -m venv .venv
# the torch/torchvision pair installs from this machine's local disk (CUDA build, runs on CPU too); uv (a
# dependency of flwr) installs in parallel from pip's sources, pip is the fallback
packages=(torch==2.14.1 torchvision==0.29.1 -e ".[test]")
if ! { .venv/bin/pip install -q "uv>=0.13.5,<0.14" && .venv/bin/python scripts/uv_install.py "${packages[@]}"; }; then
  echo "semfed: installing with uv failed; installing with pip" >&2
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q "${packages[@]}"
fi
echo "$want" > "$stamp"
