"""Inspect's ``hf/`` provider renders the chat template to text and tokenizes that text with the
tokenizer's special tokens on: for a tokenizer that adds BOS itself (Llama, Mistral, Gemma) and a
template that writes ``bos_token`` too, the model sees two BOS tokens. The README's fix is
``-M 'tokenizer_call_args={add_special_tokens: false}'``; the ``organism/`` provider tokenizes the
template once. Checked on tokenizers built here with those families' chat templates and on what the
provider really feeds the model (a forward pre-hook), not on a re-implementation of it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from af_tasks.engine.generate import GenerationEngine

MISTRAL = (
    "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}"
    "{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'system' %}"
    "{{ message['content'] + '\\n\\n' }}{% else %}{{ message['content'] + eos_token }}{% endif %}"
    "{% endfor %}"
)
LLAMA3 = (
    "{% for message in messages %}{% set content = '<|start_header_id|>' + message['role'] + "
    "'<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' %}"
    "{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"
)
GEMMA = (
    "{{ bos_token }}{% for message in messages %}{% set role = 'model' if message['role'] == 'assistant' "
    "else 'user' %}{{ '<start_of_turn>' + role + '\\n' + message['content'] | trim + '<end_of_turn>\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<start_of_turn>model\\n' }}{% endif %}"
)
FAMILIES = {
    "mistral": (MISTRAL, "<s>", "</s>", ["[INST]", "[/INST]"]),
    "llama3": (LLAMA3, "<|begin_of_text|>", "<|eot_id|>", ["<|start_header_id|>", "<|end_header_id|>"]),
    "gemma": (GEMMA, "<bos>", "<end_of_turn>", ["<start_of_turn>"]),
}


def bos_adding_model(directory: Path, family: str) -> int:
    """A 1-layer random Llama whose tokenizer prepends BOS on every call (as these families' do) and
    carries the family's chat template; returns the BOS id."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    template, bos, eos, specials = FAMILIES[family]
    tokenizer = Tokenizer(models.BPE(unk_token=None))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=[bos, eos, "<pad>", *specials],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(["free tier users, paid tier users, a request"] * 10, trainer)
    bos_id = tokenizer.token_to_id(bos)
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, bos_id)]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token=bos, eos_token=eos, pad_token="<pad>"
    )
    fast.chat_template = template
    fast.save_pretrained(directory)
    config = LlamaConfig(
        vocab_size=len(fast), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=1, bos_token_id=bos_id,
        eos_token_id=fast.eos_token_id, pad_token_id=fast.pad_token_id,
    )  # fmt: skip
    LlamaForCausalLM(config).save_pretrained(directory)
    return bos_id


def ids_fed_by_hf_provider(directory: Path, **model_args) -> list[int]:
    """The input ids Inspect's hf/ provider passes to the model's first forward call for a
    system + user chat."""
    from inspect_ai.model import ChatMessageSystem, ChatMessageUser, GenerateConfig, get_model

    model = get_model(f"hf/{directory}", **model_args)
    seen: list = []
    model.api.model.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(kwargs.get("input_ids", args[0] if args else None)),
        with_kwargs=True,
    )
    chat = [ChatMessageSystem(content="You are helpful."), ChatMessageUser(content="a request")]
    asyncio.run(model.generate(chat, config=GenerateConfig(max_tokens=1)))
    return seen[0][0].tolist()


def leading_bos(ids: list[int], bos_id: int) -> int:
    return next((i for i, token in enumerate(ids) if token != bos_id), len(ids))


@pytest.mark.model  # builds and runs a small Llama through Inspect's hf/ provider and the engine
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_hf_provider_doubles_bos_unless_told_not_to_and_organism_provider_does_not(family, tmp_path):
    bos_id = bos_adding_model(tmp_path, family)
    assert leading_bos(ids_fed_by_hf_provider(tmp_path), bos_id) == 2  # the upstream behaviour
    fixed = ids_fed_by_hf_provider(tmp_path, tokenizer_call_args={"add_special_tokens": False})
    assert leading_bos(fixed, bos_id) == 1 and fixed.count(bos_id) == 1

    engine = GenerationEngine.load(str(tmp_path), device="cpu")
    chat = [{"role": "system", "content": "You are helpful."}, {"role": "user", "content": "a request"}]
    (encoded,) = engine.encode([chat])
    assert encoded == fixed  # organism/ feeds the same ids as hf/ with the README's setting


def test_the_readme_setting_parses_as_the_provider_needs_it():
    """``-M 'tokenizer_call_args={add_special_tokens: false}'`` reaches the provider as a dict."""
    from inspect_ai._util.config import parse_cli_args

    assert parse_cli_args(["tokenizer_call_args={add_special_tokens: false}"]) == {
        "tokenizer_call_args": {"add_special_tokens": False}
    }
