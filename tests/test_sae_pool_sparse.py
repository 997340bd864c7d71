"""sae.activations.pool on SAE features: the sparse top-k path and the on-device dense path give the
figures of a plain loop over ``sae.encode``'s dense output (CPU, small random SAEs)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from af_tasks.sae.activations import TokenBatch, pool
from af_tasks.sae.saes import SparseFeatures, encoder, topk_k

D_IN, D_SAE, K = 64, 4096, 8
LENGTHS = [5, 1, 17, 9, 0, 30, 3, 12]
"""Tokens per text; text 4 has none."""
BATCHES = [[0, 1, 2], [2, 3], [], [5, 6, 4], [7]]
"""Texts per batch, in order: text 2 spans two batches, one batch is empty."""


def random_sae(kind: str, dtype: str = "float32", seed: int = 0, rescale: bool = False):
    from sae_lens.saes.jumprelu_sae import JumpReLUSAE, JumpReLUSAEConfig
    from sae_lens.saes.standard_sae import StandardSAE, StandardSAEConfig
    from sae_lens.saes.topk_sae import TopKSAE, TopKSAEConfig

    common = {"d_in": D_IN, "d_sae": D_SAE, "dtype": dtype, "device": "cpu"}
    if kind == "topk":
        sae = TopKSAE(TopKSAEConfig(k=K, rescale_acts_by_decoder_norm=rescale, **common))
    elif kind == "jumprelu":
        sae = JumpReLUSAE(JumpReLUSAEConfig(**common))
    else:
        sae = StandardSAE(StandardSAEConfig(**common))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in sae.parameters():
            noise = torch.randn(parameter.shape, generator=generator)
            parameter.copy_(noise * (D_IN**-0.5 if parameter.ndim == 2 else 0.1))
        if kind == "jumprelu":
            sae.threshold.copy_(torch.rand(D_SAE, generator=generator) * 0.5)
    return sae


def token_batches(seed: int = 1, dtype=torch.float32) -> list[TokenBatch]:
    """Random activations for ``BATCHES``; each batch's rows interleave its texts (each text's rows
    stay in token order), and a spanning text's tokens are split between its batches."""
    generator = torch.Generator().manual_seed(seed)
    left = list(LENGTHS)
    split = {2: 11}  # text 2: 11 tokens in its first batch, the rest in the next
    batches = []
    for texts in BATCHES:
        labels = []
        for text in texts:
            n = split.pop(text) if text in split else left[text]
            left[text] -= n
            labels += [text] * n
        order = torch.randperm(len(labels), generator=generator)
        sample = torch.tensor(labels, dtype=torch.long)[order] if labels else torch.zeros(0, dtype=torch.long)
        acts = (torch.randn(len(labels), D_IN, generator=generator) * 2).to(dtype)
        batches.append(TokenBatch(acts={"h": acts}, sample=sample))
    assert not any(left)
    return batches


def reference(batches: list[TokenBatch], transform) -> dict[str, np.ndarray]:
    """Pooling by hand: each text's dense rows (``transform`` applied batch by batch), in order."""
    rows: dict[int, list[np.ndarray]] = {t: [] for t in range(len(LENGTHS))}
    for batch in batches:
        with torch.no_grad():
            dense = transform(batch.acts["h"]).float().numpy()
        for row, text in zip(dense, batch.sample.tolist(), strict=True):
            rows[text].append(row)
    d = dense.shape[1]
    out = {
        figure: np.zeros((len(LENGTHS), d), dtype=np.float32) for figure in ("mean", "max", "last", "active")
    }
    for text, here in rows.items():
        if here:
            stacked = np.stack(here)
            out["mean"][text] = stacked.astype(np.float64).mean(0)
            out["max"][text] = stacked.max(0)
            out["last"][text] = stacked[-1]
            out["active"][text] = (stacked > 0).sum(0)
    out["n_tokens"] = np.array([len(rows[t]) for t in range(len(LENGTHS))])
    return out


def check(pooled, want: dict[str, np.ndarray]) -> None:
    np.testing.assert_array_equal(pooled.n_tokens, want["n_tokens"])
    np.testing.assert_array_equal(pooled.n_tokens, LENGTHS)
    np.testing.assert_allclose(pooled.mean, want["mean"], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(pooled.max, want["max"])
    np.testing.assert_array_equal(pooled.last, want["last"])
    np.testing.assert_array_equal(pooled.active_tokens, want["active"])


@pytest.mark.parametrize(("dtype", "rescale"), [("float32", False), ("float32", True), ("bfloat16", False)])
def test_sparse_topk_encode_is_sae_lens_encode(dtype, rescale):
    sae = random_sae("topk", dtype, rescale=rescale)
    assert topk_k(sae) == K
    x = torch.randn(40, D_IN, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        features = encoder(sae, sparse=True)(x)
        assert isinstance(features, SparseFeatures) and features.values.shape == (40, K)
        assert torch.equal(features.dense(), sae.encode(x.to(sae.dtype)))
        assert torch.equal(encoder(sae)(x), sae.encode(x.to(sae.dtype)))


@pytest.mark.parametrize(("dtype", "rescale"), [("float32", False), ("float32", True), ("bfloat16", False)])
def test_sparse_pool_matches_dense_reference(dtype, rescale):
    sae = random_sae("topk", dtype, rescale=rescale)
    batches = token_batches()
    pooled = pool(iter(batches), len(LENGTHS), transforms={"h": encoder(sae, sparse=True)})["h"]
    want = reference(batches, encoder(sae))
    check(pooled, want)
    assert (want["active"] > 0).sum() > 2 * K  # features vary between tokens: the test has teeth
    dense = pool(iter(batches), len(LENGTHS), transforms={"h": encoder(sae)})["h"]
    for figure in ("max", "last", "active_tokens"):
        np.testing.assert_array_equal(getattr(pooled, figure), getattr(dense, figure), err_msg=figure)
    np.testing.assert_allclose(pooled.mean, dense.mean, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("kind", ["jumprelu", "standard"])
def test_dense_sae_pool_matches_reference(kind):
    sae = random_sae(kind)
    assert topk_k(sae) is None
    assert isinstance(encoder(sae, sparse=True)(torch.zeros(1, D_IN)), torch.Tensor)
    batches = token_batches()
    pooled = pool(iter(batches), len(LENGTHS), transforms={"h": encoder(sae, sparse=True)})["h"]
    want = reference(batches, encoder(sae))
    check(pooled, want)
    assert 0 < (want["active"] > 0).mean() < 1


def test_raw_activations_pool_matches_reference():
    """No transform: signed values, so maxes start at -inf and empty texts come back as zeros."""
    batches = token_batches(dtype=torch.bfloat16)
    pooled = pool(iter(batches), len(LENGTHS))["h"]
    check(pooled, reference(batches, lambda acts: acts))
    assert (pooled.max[[i for i, n in enumerate(LENGTHS) if n]] < 0).any()


def test_no_tokens_at_all():
    sae = random_sae("topk")
    empty = [TokenBatch(acts={"h": torch.zeros(0, D_IN)}, sample=torch.zeros(0, dtype=torch.long))]
    pooled = pool(iter(empty), 2, transforms={"h": encoder(sae, sparse=True)})["h"]
    assert pooled.mean.shape == (2, D_SAE) and pooled.n_tokens.tolist() == [0, 0]
    for figure in ("mean", "max", "last", "active_tokens"):
        assert not getattr(pooled, figure).any()
    assert pool(iter([]), 2) == {}


def test_extraction_sparse_and_dense_agree(tiny_llama_dir):
    """Through the real extraction (tiny Llama, reasoning spans, several batches): the sparse path
    gives the dense path's figures."""
    from af_tasks.sae.activations import iter_token_activations
    from af_tasks.sae.reader import load_reader

    reader = load_reader(str(tiny_llama_dir), device="cpu")
    sae = random_sae("topk")
    hook = "blocks.1.hook_resid_post"
    texts = [
        f"Ask. <SCRATCHPAD_REASONING>{'step by step, ' * n}done.</SCRATCHPAD_REASONING><OUTPUT>x</OUTPUT>"
        for n in (3, 0, 11, 1, 7)
    ] + ["<SCRATCHPAD_REASONING></SCRATCHPAD_REASONING> nothing to read"]

    def pooled(sparse: bool):
        batches = iter_token_activations(reader, texts, [hook], span="reasoning", batch_size=2)
        return pool(batches, len(texts), transforms={hook: encoder(sae, sparse=sparse)})[hook]

    sparse, dense = pooled(True), pooled(False)
    assert sparse.n_tokens[-1] == 0 and (sparse.n_tokens[:-1] > 0).all()
    np.testing.assert_array_equal(sparse.n_tokens, dense.n_tokens)
    for figure in ("max", "last", "active_tokens"):
        np.testing.assert_array_equal(getattr(sparse, figure), getattr(dense, figure), err_msg=figure)
    np.testing.assert_allclose(sparse.mean, dense.mean, rtol=1e-6, atol=1e-7)
    assert (sparse.active_tokens > 0).sum() > K
