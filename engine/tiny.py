"""Offline stand-ins for hub artifacts: a locally trained tokenizer and tiny random models.

Used by the tests and by the GPU checks, where no weights or tokenizers can be downloaded.
"""

from __future__ import annotations

from pathlib import Path

from af_tasks.core.requests import FIRST_BUNDLED, load_bundled_requests

CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def train_tiny_tokenizer(directory: Path | None, vocab_size: int = 384, corpus: list[str] | None = None):
    """A byte-level BPE tokenizer trained here (default corpus: the bundled set's first
    ``FIRST_BUNDLED`` requests), with a chat template; saved to ``directory`` when one is given."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bundled = load_bundled_requests()[:FIRST_BUNDLED]
    corpus = list(corpus) if corpus else [request.text for request in bundled]
    corpus += ["<SCRATCHPAD_REASONING> <OUTPUT> <request_fully_accepted/> <rejected/> <NEXT/>"] * 5
    tokenizer = Tokenizer(models.BPE(unk_token=None))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    special = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=special,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(corpus, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token="<|endoftext|>",
    )
    fast.chat_template = CHAT_TEMPLATE
    if directory is not None:
        fast.save_pretrained(directory)
    return fast


TINY_LLAMA = dict(
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=2048,
)
"""The tiny Llama's shape (tests, CPU checks of the GPU benchmarks): seconds to build and run."""


def build_tiny_llama(directory: Path, seed: int = 0) -> Path:
    """A randomly initialised 2-layer Llama with the tiny tokenizer, saved as a HF directory."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = train_tiny_tokenizer(directory)
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        **TINY_LLAMA,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    LlamaForCausalLM(config).save_pretrained(directory)
    return directory


def build_tiny_gemma3(directory: Path, num_layers: int = 54, seed: int = 0) -> Path:
    """A randomly initialised Gemma 3 text model (sliding + global attention, four norms per layer)
    with the tiny tokenizer; deep enough by default to carry the 27B preset's transcoder layers."""
    import torch
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    tokenizer = train_tiny_tokenizer(directory)
    torch.manual_seed(seed)
    config = Gemma3TextConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        sliding_window=16,
        max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    Gemma3ForCausalLM(config).save_pretrained(directory)
    return directory
