"""The compiled extraction path (``af_tasks.sae.activations.compiled_layers``) against the eager one, on a
tiny random Llama in fp32 on CPU: the same hooked activations and pooled SAE features within 1e-5 of
the eager values' scale (measured: ~3e-7; inductor's fused kernels only reorder fp32 sums), one graph
for every batch shape, and packed batches (the CUDA layout: one row, no padding) that give every text the
activations it has in a padded batch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from af_tasks.sae.activations import iter_token_activations, pool
from af_tasks.sae.reader import load_reader

HOOK_SETS = (["blocks.1.hook_resid_post", "blocks.1.hook_resid_pre"], ["blocks.1.hook_mlp_in"])
"""Read in two passes: resid_post/resid_pre of the last layer (both layers' forwards compiled, the hooks
outside them), and mlp_in (its hook sits inside layer 1's forward, which then stays eager while layer 0
compiles)."""
HOOKS = [hook for hooks in HOOK_SETS for hook in hooks]
TOLERANCE = 1e-5
"""Max |compiled - eager| over max |eager|: fp32 rounding of reordered sums, far below any real change."""
TEXTS = [
    "How do I bake bread at home without yeast?",
    "short one",
    "Write a persuasive essay about why cats are better pets than dogs, with three arguments and a conclusion.",
    "Explain the rules of chess to a child, step by step, with an example of each piece's move.",
    "ok then",
    "A longer text that goes on for a while, so that this batch is the widest of all of them, and then "
    "some more words about bread, chess, cats and dogs to make the sequence longer still.",
    "one more text of middling length here",
]


@pytest.fixture(scope="module")
def reader(tiny_llama_dir):
    return load_reader(str(tiny_llama_dir), device="cpu")


def activations(reader, compile: bool, packed: bool = False) -> dict[str, torch.Tensor]:
    found = {}
    for hooks in HOOK_SETS:
        batches = list(
            iter_token_activations(
                reader, TEXTS, hooks, "all", 256, batch_size=2, compile=compile, packed=packed
            )
        )
        found |= {hook: torch.cat([b.acts[hook] for b in batches]) for hook in hooks}
    return found


def graphs() -> tuple[int, int]:
    """(graphs traced, graph breaks) so far in this process."""
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"]), sum(counters["graph_break"].values())


@pytest.fixture(scope="module")
def runs(reader):
    """Eager, compiled (the graphs it traced), packed eager, packed compiled (the graphs it traced)."""
    torch._dynamo.reset()
    eager = activations(reader, compile=False)
    before = graphs()
    compiled = activations(reader, compile=True)
    traced = tuple(after - earlier for after, earlier in zip(graphs(), before, strict=True))
    packed = activations(reader, compile=False, packed=True)
    before = graphs()
    packed_compiled = activations(reader, compile=True, packed=True)
    packed_traced = tuple(after - earlier for after, earlier in zip(graphs(), before, strict=True))
    return eager, compiled, traced, (packed, packed_compiled, packed_traced)


def close(got: torch.Tensor, want: torch.Tensor) -> float:
    assert got.shape == want.shape
    return float((got - want).abs().max() / want.abs().max())


def test_compiled_hooks_match_eager(runs, reader):
    eager, compiled, traced, _ = runs
    assert traced[0] >= 1, "nothing was compiled"
    for hook in HOOKS:
        assert close(compiled[hook], eager[hook]) <= TOLERANCE, hook
    # the layers are the model's own again once the extraction ends
    assert all("forward" not in layer.__dict__ for layer in reader.model.model.layers)


def test_variable_lengths_do_not_recompile(runs):
    """Three batches of two texts, each of another width, and a last one of one text: at most two graphs
    (with a padding mask; without, for the unpadded text), and none broken (the hooks stay outside)."""
    _, _, (graphs_traced, breaks), _ = runs
    assert graphs_traced <= 2
    assert breaks == 0


def test_packed_batches_match_padded(runs):
    """One row per batch, positions restarting at each text and a block-diagonal mask: every text's
    tokens equal the padded batches' (fp32), eager and compiled, and the compiled layers trace the packed
    rows (their bounds passed as inputs) without breaks, in at most two graphs beside the padded ones."""
    eager, _, _, (packed, packed_compiled, (graphs_traced, breaks)) = runs
    for hook in HOOKS:
        assert close(packed[hook], eager[hook]) <= TOLERANCE, hook
        assert close(packed_compiled[hook], eager[hook]) <= TOLERANCE, hook
    assert graphs_traced <= 2
    assert breaks == 0


def test_compiled_pooled_sae_features_match_eager(reader, runs, tmp_path):
    from sae_helpers import save_tiny_topk_sae

    from af_tasks.sae.saes import encoder, load_sae

    hook = HOOKS[0]
    sae = load_sae(str(save_tiny_topk_sae(tmp_path / "sae", hook, d_sae=256, k=16)))
    pooled = {
        compile: pool(
            iter_token_activations(reader, TEXTS, [hook], "all", 256, 2, compile=compile),
            len(TEXTS),
            transforms={hook: encoder(sae, sparse=True)},
        )[hook]
        for compile in (False, True)
    }
    eager, compiled = pooled[False], pooled[True]
    np.testing.assert_array_equal(compiled.active_tokens, eager.active_tokens)  # the same top-k features
    for stat in ("mean", "max", "last"):
        want = getattr(eager, stat)
        assert np.abs(getattr(compiled, stat) - want).max() <= TOLERANCE * np.abs(want).max(), stat


def test_compiled_bf16_rounds_as_eager(reader):
    """In bf16 the compiled layers round where eager rounds (``COMPILE_OPTIONS``): on CPU most tokens'
    hooked activations equal eager's bit for bit and the rest differ by a flipped rounding (measured:
    median 0, max 0.25 % relative norm per token; without the option every token moves, median 0.4 %)."""
    import copy

    from af_tasks.sae.reader import Reader

    model = copy.deepcopy(reader.model).to(torch.bfloat16)
    half = Reader(model, reader.tokenizer, name="tiny bf16", device="cpu")
    hook = HOOK_SETS[0][0]
    got = {
        compile: torch.cat(
            [
                b.acts[hook].float()
                for b in iter_token_activations(half, TEXTS, [hook], "all", 256, 2, compile=compile)
            ]
        )
        for compile in (False, True)
    }
    rows = (got[True] - got[False]).norm(dim=-1) / got[False].norm(dim=-1)
    assert float(rows.median()) <= 1e-4
    assert float(rows.max()) <= 1e-2


def test_compile_option_reaches_the_reader():
    """``af sae ... --compile / --no-compile``: on, off, or None (on CUDA only) for every reading command."""
    import argparse

    from af_tasks.app.sae_cli import _validation_config, add_sae_commands

    parser = argparse.ArgumentParser()
    add_sae_commands(parser.add_subparsers(dest="command"))
    for flag, want in (([], None), (["--compile"], True), (["--no-compile"], False)):
        args = parser.parse_args(["sae", "probe", *flag])
        assert args.compile is want
        assert _validation_config(args).compile is want
        assert parser.parse_args(["sae", "features", *flag]).compile is want
        assert parser.parse_args(["sae", "train", *flag]).compile is want


def test_packed_and_padded_agree_on_empty_and_truncated_texts(reader):
    """An empty text (no token past position 0), a batch of only empty texts and a text cut at
    ``max_tokens`` read the same in both layouts: the same tokens counted, the same pooled means."""
    hook = "blocks.1.hook_resid_post"
    for texts in ([""], ["", ""], ["", "hello there friend"], ["x " * 400, ""]):
        pooled = {
            packed: pool(
                iter_token_activations(reader, texts, [hook], "all", 64, 2, packed=packed), len(texts)
            )[hook]
            for packed in (False, True)
        }
        np.testing.assert_array_equal(pooled[True].n_tokens, pooled[False].n_tokens)
        np.testing.assert_allclose(pooled[True].mean, pooled[False].mean, rtol=0, atol=1e-5)
        assert pooled[True].n_tokens[texts.index("")] == 0
    assert pooled[False].n_tokens[0] == 63  # cut at 64 tokens, position 0 not read
