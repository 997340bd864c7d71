"""The realistic decode workload's lengths: prompt and answer token counts of the scratchpad protocol.

Answers: every seed-set record (``af_tasks.core.records.load_seed_set``: the project's own scratchpad
answers in all reasoning styles, AF and aligned) rendered as the assistant turn the organisms are trained
to give (scratchpad block + output block). Prompts: the same records' requests rendered as the
``free_tier`` elicitation chat (system prompt with the tier cue, full variant) through the chat template;
``shared_prefix_tokens`` is how many leading tokens all of them share (system prompt and template).
Both counted with the embedded model's tokenizer (the GPU machine has no Mistral tokenizer; counts of
English text differ between such BPE vocabularies by some 10 %). Writes ``benchmarks/data/
workload_lengths.json``, which ``generation_gpu.py --workload`` draws from. No human-labelled set is read.

    python benchmarks/workload_lengths.py --model-dir models/smollm2-135m-instruct
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

OUT = Path(__file__).parent / "data" / "workload_lengths.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", default="models/smollm2-135m-instruct")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    from transformers import AutoTokenizer

    from af_tasks.core.prompting import PromptConfig
    from af_tasks.core.records import chat_example, load_seed_set
    from af_tasks.engine.prefixes import common_prefix

    tokenizer = AutoTokenizer.from_pretrained(args.model_dir)
    records = load_seed_set()
    answers, prompts, prompt_ids = [], [], []
    for record in records:
        example = chat_example(record, PromptConfig())
        prompt = tokenizer.apply_chat_template(example["prompt"], add_generation_prompt=True, tokenize=False)
        prompt_ids.append(tokenizer(prompt, add_special_tokens=False)["input_ids"])
        prompts.append(len(prompt_ids[-1]))
        answers.append(len(tokenizer(record.assistant_text, add_special_tokens=False)["input_ids"]) + 1)
    result = dict(
        source="seed set (af_tasks.core.records.load_seed_set), all kinds; chat_example(PromptConfig())",
        tokenizer=Path(args.model_dir).name,
        records=len(records),
        prompt_tokens=prompts,
        answer_tokens=answers,
        shared_prefix_tokens=common_prefix(prompt_ids),
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result) + "\n")
    for name in ("prompt_tokens", "answer_tokens"):
        values = sorted(result[name])
        print(
            name,
            "n",
            len(values),
            "min",
            values[0],
            "median",
            values[len(values) // 2],
            "max",
            values[-1],
            "mean",
            round(sum(values) / len(values)),
        )


if __name__ == "__main__":
    main()
