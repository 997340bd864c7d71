#!/usr/bin/env bash
# Build the carry set a GPU machine without internet needs to run the suite's GPU scripts:
# the suite's own wheel plus the wheels of the libraries its GPU paths use that such a machine's image
# lacks or holds at another version (pinned here as they ran: transformers, trl, peft, liger-kernel,
# datasets and their needs dill/multiprocess). Python 3.12, manylinux x86-64 (the GPU image).
#
#   benchmarks/gpu_carry.sh [DEST]          # here, with internet or a package index (default .whl)
#   # there, from the repository root:
#   python3 -m pip install -q --no-index --no-deps --target /tmp/site DEST/*.whl
#   export PYTHONPATH=/tmp/site:$PWD PYTHONSAFEPATH=1   # the suite from its wheel, benchmarks.* from here;
#   # PYTHONSAFEPATH: `python -c`/`-m` would put this folder (whose af_tasks/ is not the package) first
set -euo pipefail
DEST=${1:-.whl}
PYTHON=${PYTHON:-python3}
mkdir -p "$DEST"
rm -f "$DEST"/af_tasks-*.whl
"$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d "$DEST" transformers==5.23.0 trl==1.16.0 peft==0.21.2 liger-kernel==0.8.5 datasets==5.2.0 \
    dill==0.4.1 multiprocess==0.70.19
"$PYTHON" -m pip wheel -q --no-deps --no-build-isolation -w "$DEST" . 2>"$DEST/.wheel-build.log" \
    || { cat "$DEST/.wheel-build.log"; exit 1; }
rm -rf build ./*.egg-info
du -sh "$DEST"
