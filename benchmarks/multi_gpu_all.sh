#!/usr/bin/env bash
# Past one GPU, data parallel: generation, SAE extraction and the retention cells on 1 vs N devices.
#
# Usage (from the repository root, on a machine with 2 GPUs and no network):
#   benchmarks/multi_gpu_all.sh OUTDIR [DEVICES]        # DEVICES default 0,1
#   CPU=1 benchmarks/multi_gpu_all.sh OUTDIR cpu,cpu     # the plumbing on CPU (tiny models)
#   SKIP_RETENTION=1 leaves the retention step out; FSDP=1 adds af train under FSDP2 (adapter saved once,
#   loads, --merge equal); TRAIN=1 adds the DDP training benchmark
#   (benchmarks/multi_gpu_train_gpu.py single,ddp: needs trl, takes minutes more).
#
# Writes into OUTDIR: generation_devices.json (engine replicas, as -M devices=0,1; Mistral-7B
# architecture with random weights, bf16, batch 32 per device, 512 prompt + 128 new tokens, 3 timed
# runs per arm), sae_extraction_devices.json (mistral-7b preset, random top-k SAE of its size in plain
# torch, seed-set scratchpads, 3 passes per arm), retention_devices.json (toy-size experiment: only
# when inspect-ai and trl import), and one .log per step. Each step has its own time limit so the whole
# stays under 8 minutes; a step that fails or times out is recorded in its log and the others still run.
# Needs torch, transformers, peft (and accelerate); not sae-lens. PYTHON overrides the interpreter.
set -uo pipefail

OUT=${1:?usage: $0 OUTDIR [DEVICES]}
DEVICES=${2:-0,1}
PYTHON=${PYTHON:-python3}
mkdir -p "$OUT"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false

# The suite must be installed (its folders map under af_tasks only through setuptools): here with
# `make`, there with the carry set of benchmarks/gpu_carry.sh (PYTHONPATH=/tmp/site). This checkout goes
# last on the path, for benchmarks.* alone.
export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$PWD" PYTHONSAFEPATH=1  # no cwd first: its af_tasks/ is not the package
"$PYTHON" -c "import af_tasks.core.devices, af_tasks.engine.generate" \
    || { echo "af_tasks does not import: install the suite (make, or benchmarks/gpu_carry.sh there)"; exit 1; }

if [[ ${CPU:-0} == 1 ]]; then
    GEN=(--tiny --batch-sizes 4 --prompt-tokens 16 --new-tokens 8)
    SAE=(--tiny --texts 16 --batch-size 4 --max-tokens 128)
else
    GEN=(--batch-sizes 32 --prompt-tokens 512 --new-tokens 128)
    SAE=(--presets mistral-7b --batch-size 32 --max-tokens 1024)
fi

step() {  # step NAME LIMIT_S command...
    local name=$1 limit=$2
    shift 2
    local started=$SECONDS
    echo "== $name (limit ${limit}s)"
    timeout --kill-after=10 "$limit" "$@" >"$OUT/$name.log" 2>&1
    local status=$?
    echo "   exit $status after $((SECONDS - started)) s; last lines:"
    tail -n 4 "$OUT/$name.log" | sed 's/^/   /'
}

nvidia-smi --query-gpu=index,name,memory.total --format=csv >"$OUT/gpus.csv" 2>/dev/null || true
step generation_devices 210 "$PYTHON" benchmarks/generation_gpu.py --devices "$DEVICES" --repeats 3 \
    "${GEN[@]}" --out "$OUT/generation_devices.json"
step sae_extraction_devices 120 "$PYTHON" benchmarks/sae_extraction_gpu.py --devices "$DEVICES" --repeats 3 \
    "${SAE[@]}" --out "$OUT/sae_extraction_devices.json"
if [[ ${SKIP_RETENTION:-0} != 1 ]] && "$PYTHON" -c "import inspect_ai, trl" 2>/dev/null; then
    step retention_devices 130 "$PYTHON" benchmarks/retention_devices_gpu.py --devices "$DEVICES" \
        --out "$OUT/retention_devices.json"
else
    echo "== retention_devices skipped (SKIP_RETENTION=1, or inspect-ai and trl do not import)" | tee "$OUT/retention_devices.log"
fi
if [[ ${FSDP:-0} == 1 ]]; then  # opt-in: af train under the shipped FSDP2 config, adapter saved once, --merge
    step fsdp_adapter_check 200 "$PYTHON" benchmarks/fsdp_adapter_check_gpu.py --gpus "$(tr ',' '\n' <<<"$DEVICES" | wc -l)" \
        --out "$OUT/fsdp_adapter_check.json"
fi
if [[ ${TRAIN:-0} == 1 ]]; then  # opt-in (several minutes at 7B; needs trl): DDP training scaling
    if [[ ${CPU:-0} == 1 ]]; then TRAIN_ARGS=(--tiny --cpu --steps 3 --max-length 128); else TRAIN_ARGS=(--gpus 2); fi
    step multi_gpu_train 600 "$PYTHON" benchmarks/multi_gpu_train_gpu.py "${TRAIN_ARGS[@]}" --modes single,ddp \
        --out "$OUT/multi_gpu_train.json"
fi
echo "total ${SECONDS} s; JSON in $OUT"
