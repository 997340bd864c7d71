"""Before an eval starts: does every sample's first prompt, plus the tokens asked for, fit the evaluated
model's context window?

Why: a local model run past ``max_position_embeddings`` does not fail cleanly — RoPE models generate
degraded text and the run is reported as a success; others fail mid-batch. Inspect builds tasks after it
has loaded the model (``get_model()`` is the evaluated model there), so a task can check its samples
against the model's tokenizer and window and refuse, as one line, before any sample runs. Covered:
``organism/`` (its ``check_prompt``) and Inspect's ``hf/`` (its tokenizer and model); API models are
skipped (their providers report overflow themselves). Later protocol turns grow the prompt: the
``organism/`` provider checks each of them again before generating.
"""

from __future__ import annotations

from typing import Any

from inspect_ai.dataset import Sample
from inspect_ai.model import ChatMessage
from inspect_ai.model._generate_config import active_generate_config
from inspect_ai.model._model import active_model

from af_tasks.solvers.system_prompt import first_prompt


def effective_max_tokens(task_max_tokens: int) -> int:
    """The eval's ``--max-tokens`` when given (it overrides the task's), else the task's."""
    return active_generate_config().max_tokens or task_max_tokens


def check_context(samples: list[Sample], task_max_tokens: int) -> None:
    """Raise ``ContextLimitError`` (one line naming the sample, the sizes and what to lower) for the
    first sample whose first prompt + max_tokens does not fit the evaluated local model."""
    model = active_model()
    if model is None:  # a task built outside an eval: no model to check against
        return
    api = model.api
    check = _checker(api)
    if check is None:
        return
    max_tokens = effective_max_tokens(task_max_tokens)
    for sample in samples:
        check(first_prompt(sample), max_tokens, f"{api.model_name}: sample {sample.id}")


def _checker(api: Any):
    if hasattr(api, "check_prompt"):  # the organism/ provider
        return api.check_prompt
    tokenizer, model = getattr(api, "tokenizer", None), getattr(api, "model", None)
    if tokenizer is None or getattr(model, "config", None) is None:
        return None
    if getattr(tokenizer, "chat_template", None) is None:
        return None
    from af_tasks.engine.generate import check_fits, context_window, prompt_ids

    window = context_window(model)

    def check(messages: list[ChatMessage], max_tokens: int, where: str) -> None:
        chat = [{"role": message.role, "content": message.text} for message in messages]
        try:
            prompt = prompt_ids(tokenizer, chat)
        except Exception:  # noqa: BLE001 - a template that refuses these roles fails in hf/ itself
            return
        check_fits(len(prompt), max_tokens, window, where)

    return check
