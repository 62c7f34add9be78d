#!/usr/bin/env bash
# Prepare this checkout to run: the Debian packages it needs (graphviz for the cell
# pictures, dataset-fashion-mnist for the demo data, g++ to compile our CPU depthwise
# kernel on first use: darts_paddle/kernels/), a virtualenv in .venv with
# darts-paddle installed in editable mode, and Paddle itself only if none is importable
# (a paddlepaddle-gpu installed system-wide is seen through --system-site-packages and
# kept; pip would otherwise pull the CPU wheel over it).
# Sourced by search_demo.sh and test.sh; leaves .venv activated.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

missing=()
command -v dot >/dev/null 2>&1 || missing+=(graphviz)
command -v g++ >/dev/null 2>&1 || missing+=(g++)
[ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || missing+=(dataset-fashion-mnist)
python3 -c "import ensurepip" >/dev/null 2>&1 || missing+=(python3-venv)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then sudo=""
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo="sudo"
  else
    echo "setup: please install the Debian packages: sudo apt-get install ${missing[*]}" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]} with apt-get"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  python3 -m venv --system-site-packages .venv
fi
# shellcheck disable=SC1091
. .venv/bin/activate
python -m pip install -q --disable-pip-version-check -e ".[test]"
if ! python -c "import paddle" >/dev/null 2>&1; then
  echo "setup: no paddle found, installing the CPU build (GPU: see README, paddlepaddle-gpu)"
  python -m pip install -q --disable-pip-version-check -e ".[cpu]"
fi
