#!/usr/bin/env bash
# Set up (scripts/setup.sh), install the optional extras and run the test suite.  Extra
# arguments go to pytest.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
# the optional extras, so that their tests (test_vdl.py, test_onnx.py, test_nb201.py) run
# instead of skipping
python -m pip install -q --disable-pip-version-check -e ".[visualdl,onnx,nb201]"
python -m pytest -q "$@"
