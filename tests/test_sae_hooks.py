"""sae.hooks / sae.activations on a tiny random Llama, checked against references computed here:
``output_hidden_states``, our own forward hooks, and a by-hand post-attention norm and MLP."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from af_tasks.core.hooks import HookError, HookPoint, parse_hook
from af_tasks.core.protocol import reasoning_char_span
from af_tasks.sae.activations import ExtractionStats, iter_token_activations, pool
from af_tasks.sae.reader import Reader, load_reader

TEXTS = [
    "How do I bake bread at home without yeast?",
    "short one",
    "Write a persuasive essay about why cats are better pets than dogs, with three arguments and a conclusion.",
    "Explain the rules of chess to a child.",
    "ok then",
]

R = "SCRATCHPAD_REASONING"
SPAN_TEXTS = [
    f"Request first. <{R}>I think the user wants bread, so I will help.</{R}>\n<OUTPUT>Here is bread.</OUTPUT>",
    f"<{R}>I was cut off in the middle of a thought about",
    f"<{R}>first part</{R}> between <{R}>second part of it</{R}><OUTPUT>done</OUTPUT>",
    "No scratchpad in this one, only a plain request for help.",
    f"<{R}>think hard <OUTPUT><rejected/> and <{R}>not reasoning</{R}></OUTPUT>",
]


@pytest.fixture(scope="module")
def reader(tiny_llama_dir):
    return load_reader(str(tiny_llama_dir), device="cpu")


_REFERENCES: dict[tuple[int, str], dict[str, torch.Tensor]] = {}


def reference(reader: Reader, text: str, tokenizer=None) -> dict[str, torch.Tensor]:
    """Every hook point for every position of one unpadded text, from the model's own outputs
    (cached per reader and text for the reader's own tokenizer)."""
    if tokenizer is not None:
        return _reference(reader, text, tokenizer)
    key = (id(reader), text)
    if key not in _REFERENCES:
        _REFERENCES[key] = _reference(reader, text, reader.tokenizer)
    return _REFERENCES[key]


def _reference(reader: Reader, text: str, tokenizer) -> dict[str, torch.Tensor]:
    model = reader.model
    layers = model.model.layers
    attn_out: dict[int, torch.Tensor] = {}
    last_out: list[torch.Tensor] = []
    handles = [
        layer.self_attn.register_forward_hook(lambda _m, _a, out, i=i: attn_out.__setitem__(i, out[0]))
        for i, layer in enumerate(layers)
    ]
    handles.append(
        layers[-1].register_forward_hook(
            lambda _m, _a, out: last_out.append(out[0] if isinstance(out, tuple) else out)
        )
    )
    try:
        ids = tokenizer(text, return_tensors="pt")
        with torch.no_grad():
            hidden = model(**ids, output_hidden_states=True, use_cache=False).hidden_states
            out = {}
            for i, layer in enumerate(layers):
                pre = hidden[i][0]
                mlp_in = layer.post_attention_layernorm(pre + attn_out[i][0])
                mlp_out = layer.mlp(mlp_in)
                post = hidden[i + 1][0] if i + 1 < len(layers) else last_out[0][0]
                out[f"blocks.{i}.hook_resid_pre"] = pre
                out[f"blocks.{i}.hook_mlp_in"] = mlp_in
                out[f"blocks.{i}.hook_mlp_out"] = mlp_out
                out[f"blocks.{i}.hook_resid_post"] = post
                out[f"attention.{i}"] = attn_out[i][0]
    finally:
        for handle in handles:
            handle.remove()
    return out


def collect(batches) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    batches = list(batches)
    names = batches[0].acts.keys()
    acts = {name: torch.cat([b.acts[name] for b in batches]) for name in names}
    return acts, torch.cat([b.sample for b in batches])


ALL_HOOKS = [
    f"blocks.{layer}.{kind}"
    for layer in (0, 1)
    for kind in ("hook_resid_pre", "hook_resid_post", "hook_mlp_in", "hook_mlp_out")
]


def test_reference_is_self_consistent(reader):
    """resid_post = resid_pre + attention + mlp_out; the last hidden state is the final norm of resid_post."""
    ref = reference(reader, TEXTS[0])
    hidden = reader.model(
        **reader.tokenizer(TEXTS[0], return_tensors="pt"), output_hidden_states=True
    ).hidden_states
    assert reader.num_layers == 2 and len(hidden) == 3
    for layer in (0, 1):
        pre, post, mlp_in, mlp_out = (
            ref[f"blocks.{layer}.{k}"]
            for k in ("hook_resid_pre", "hook_resid_post", "hook_mlp_in", "hook_mlp_out")
        )
        torch.testing.assert_close(post, pre + ref[f"attention.{layer}"] + mlp_out, atol=1e-5, rtol=1e-4)
        assert not torch.allclose(mlp_in, pre, atol=1e-3)
    last = ref["blocks.1.hook_resid_post"]
    assert torch.allclose(reader.model.model.norm(last), hidden[-1][0], atol=1e-5)
    assert not torch.allclose(last, hidden[-1][0], atol=1e-3)  # why the last layer needs its own hook


@pytest.mark.parametrize("batch_size", [1, 3, 8])
def test_hook_points_match_the_model(reader, batch_size):
    acts, sample = collect(
        iter_token_activations(reader, TEXTS, ALL_HOOKS, span="all", batch_size=batch_size)
    )
    assert set(acts) == set(ALL_HOOKS)
    for i, text in enumerate(TEXTS):
        ref = reference(reader, text)
        n = len(reader.tokenizer(text)["input_ids"])
        assert int((sample == i).sum()) == n - 1  # position 0 dropped, nothing else (no specials here)
        for name in ALL_HOOKS:
            got = acts[name][sample == i]
            torch.testing.assert_close(got, ref[name][1:], atol=1e-5, rtol=1e-4, msg=f"{name}, text {i}")


def test_hook_kinds_differ_from_each_other(reader):
    """Guards against a capture that returns the same tensor under every name."""
    acts, _ = collect(iter_token_activations(reader, TEXTS[:2], ALL_HOOKS, span="all"))
    for a in ALL_HOOKS:
        for b in ALL_HOOKS:
            if a < b and {a, b} != {"blocks.0.hook_resid_post", "blocks.1.hook_resid_pre"}:
                assert not torch.allclose(acts[a], acts[b]), (a, b)
    torch.testing.assert_close(acts["blocks.0.hook_resid_post"], acts["blocks.1.hook_resid_pre"])


def test_special_tokens_are_dropped(reader, tiny_llama_dir):
    """A tokenizer whose post-processor appends <|im_end|>: that token never reaches the rows."""
    from tokenizers import processors
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_llama_dir))
    eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
    tokenizer._tokenizer.post_processor = processors.TemplateProcessing(
        single="$A <|im_end|>", special_tokens=[("<|im_end|>", eos)]
    )
    tokenizer.padding_side = "right"
    with_eos = Reader(reader.model, tokenizer, name="tiny+eos", device="cpu")
    assert tokenizer(TEXTS[1])["input_ids"][-1] == eos
    acts, sample = collect(iter_token_activations(with_eos, TEXTS, ["blocks.1.hook_resid_post"], span="all"))
    for i, text in enumerate(TEXTS):
        ref = reference(reader, text, tokenizer)["blocks.1.hook_resid_post"]
        torch.testing.assert_close(
            acts["blocks.1.hook_resid_post"][sample == i], ref[1:-1], atol=1e-5, rtol=1e-4
        )


class _Counter:
    def __init__(self):
        self.calls = 0

    def __call__(self, *_args):
        self.calls += 1


@pytest.mark.parametrize(
    ("hooks", "deeper_fires"),
    [
        (
            [
                "blocks.0.hook_resid_pre",
                "blocks.0.hook_mlp_in",
                "blocks.0.hook_mlp_out",
                "blocks.0.hook_resid_post",
            ],
            False,
        ),
        (["blocks.0.hook_mlp_in"], False),
        (["blocks.1.hook_resid_pre"], False),
        (["blocks.1.hook_resid_post"], True),  # positive control: the counter does count
    ],
)
def test_forward_stops_after_the_deepest_hook(reader, hooks, deeper_fires):
    layers = reader.model.model.layers
    body, norm, head = _Counter(), _Counter(), _Counter()
    handles = [
        layers[1].register_forward_hook(lambda *a: body(*a)),
        reader.model.model.norm.register_forward_pre_hook(lambda *a: norm(*a)),
        reader.model.lm_head.register_forward_pre_hook(lambda *a: head(*a)),
    ]
    try:
        list(iter_token_activations(reader, TEXTS, hooks, span="all", batch_size=2))
    finally:
        for handle in handles:
            handle.remove()
    assert (body.calls > 0) == deeper_fires
    assert norm.calls == 0 and head.calls == 0  # never the final norm or the LM head


@pytest.mark.parametrize(
    ("name", "named"),
    [
        ("blocks.0.hook_attn_out", "blocks.0.hook_attn_out"),
        ("resid_post_0", "resid_post_0"),
        ("blocks.2.hook_resid_post", "blocks.2.hook_resid_post"),
        ("blocks.7.hook_mlp_in", "blocks.7.hook_mlp_in"),
        ("layers.2", "blocks.2.hook_resid_post"),
    ],
)
def test_bad_hooks_raise_before_any_forward(reader, name, named):
    first = _Counter()
    handle = reader.model.model.layers[0].register_forward_pre_hook(lambda *a: first(*a))
    try:
        with pytest.raises(HookError) as error:
            list(iter_token_activations(reader, TEXTS, ["blocks.0.hook_resid_post", name], span="all"))
    finally:
        handle.remove()
    assert named in str(error.value)
    assert first.calls == 0


def test_parse_hook_forms():
    assert parse_hook("layers.3") == HookPoint(3, "hook_resid_post")
    assert parse_hook("layers.3").name == "blocks.3.hook_resid_post"
    assert parse_hook("model.layers.12").name == "blocks.12.hook_resid_post"
    assert parse_hook(" blocks.5.hook_mlp_out ") == HookPoint(5, "hook_mlp_out")
    assert parse_hook("blocks.4.hook_resid_pre").last_layer_needed == 3
    assert parse_hook("blocks.4.hook_mlp_in").last_layer_needed == 4
    for bad in ("layers.x", "blocks.-1.hook_resid_post", "blocks.1.hook_resid", "layer.3", ""):
        with pytest.raises(HookError, match="unknown hook name"):
            parse_hook(bad)


def test_sparsify_hook_name_can_be_used_for_training(tiny_llama_dir):
    from af_tasks.sae.train import collect_token_activations

    own = load_reader(str(tiny_llama_dir), device="cpu")  # a failure here leaks hooks: keep them off `reader`
    data, _ = collect_token_activations(own, TEXTS, "layers.0", max_tokens=64)
    canonical, _ = collect_token_activations(own, TEXTS, "blocks.0.hook_resid_post", max_tokens=64)
    torch.testing.assert_close(data, canonical)


def test_model_is_usable_while_an_extraction_is_paused(tiny_llama_dir):
    own = load_reader(str(tiny_llama_dir), device="cpu")
    batches = iter_token_activations(own, TEXTS, ["blocks.0.hook_resid_post"], span="all", batch_size=1)
    try:
        next(batches)
        ids = own.tokenizer(TEXTS[0], return_tensors="pt")
        with torch.no_grad():
            logits = own.model(**ids).logits
        assert logits.shape[:2] == ids["input_ids"].shape
    finally:
        batches.close()


def test_hooks_are_removed_when_the_extraction_ends(reader):
    model = reader.model.model
    modules = (*model.layers, *(layer.mlp for layer in model.layers))

    def registered():  # transformers installs hooks of its own: compare before and after
        return [(dict(m._forward_hooks), dict(m._forward_pre_hooks)) for m in modules]

    before = registered()
    list(iter_token_activations(reader, TEXTS, ALL_HOOKS, span="all", batch_size=2))
    partial = iter_token_activations(reader, TEXTS, ["blocks.1.hook_mlp_in"], span="all", batch_size=1)
    next(partial)
    assert registered() == before  # hooks live only for one forward: none while paused ...
    partial.close()
    assert registered() == before  # ... nor once closed
    with torch.no_grad():
        assert reader.model(**reader.tokenizer(TEXTS[0], return_tensors="pt")).logits.shape[-1] > 0


# --- pooling ---------------------------------------------------------------------------------------------


def kept_positions(reader: Reader, text: str, span: str, max_tokens: int = 10_000) -> list[int]:
    """Positions an extraction should keep, from the tokenizer's offsets (loop, not tensors)."""
    encoded = reader.tokenizer(text, return_offsets_mapping=True, truncation=True, max_length=max_tokens)
    start, end = reasoning_char_span(text) if span == "reasoning" else (0, len(text))
    return [
        j
        for j, (a, b) in enumerate(encoded["offset_mapping"])
        if j > 0 and a < end and b > start  # the token's characters overlap the span
    ]


def manual_pool(rows: np.ndarray, d: int) -> dict[str, np.ndarray]:
    if len(rows) == 0:
        zero = np.zeros(d)
        return {"mean": zero, "max": zero, "last": zero, "active_tokens": zero, "n_tokens": 0}
    return {
        "mean": rows.mean(0),
        "max": rows.max(0),
        "last": rows[-1],
        "active_tokens": (rows > 0).sum(0),
        "n_tokens": len(rows),
    }


def check_pooled(pooled, expected: list[dict], atol: float = 1e-5) -> None:
    for i, want in enumerate(expected):
        assert pooled.n_tokens[i] == want["n_tokens"], f"text {i}"
        for figure in ("mean", "max", "last", "active_tokens"):
            np.testing.assert_allclose(
                getattr(pooled, figure)[i], want[figure], atol=atol, rtol=1e-4, err_msg=f"{figure}, text {i}"
            )


@pytest.mark.parametrize("hook", ["blocks.0.hook_mlp_out", "blocks.1.hook_resid_post"])
def test_pool_all_matches_manual(reader, hook):
    pooled = pool(iter_token_activations(reader, TEXTS, [hook], span="all", batch_size=2), len(TEXTS))[hook]
    expected = []
    for text in TEXTS:
        rows = reference(reader, text)[hook].numpy()
        expected.append(manual_pool(rows[kept_positions(reader, text, "all")], rows.shape[1]))
    check_pooled(pooled, expected)
    assert pooled.mean.shape == (len(TEXTS), reader.hidden_size)
    assert (pooled.active_tokens > 0).any() and (pooled.active_tokens < pooled.n_tokens[:, None]).any()


def test_pool_reasoning_span_matches_offsets(reader):
    hook = "blocks.1.hook_resid_post"
    pooled = pool(iter_token_activations(reader, SPAN_TEXTS, [hook], span="reasoning"), len(SPAN_TEXTS))[hook]
    everything = pool(iter_token_activations(reader, SPAN_TEXTS, [hook], span="all"), len(SPAN_TEXTS))[hook]
    expected = []
    for text in SPAN_TEXTS:
        rows = reference(reader, text)[hook].numpy()
        positions = kept_positions(reader, text, "reasoning")
        expected.append(manual_pool(rows[positions], rows.shape[1]))
    check_pooled(pooled, expected)
    # spans with tags or output drop tokens; the text without a scratchpad keeps them all
    assert (pooled.n_tokens[[0, 2, 4]] < everything.n_tokens[[0, 2, 4]]).all()
    assert pooled.n_tokens[3] == everything.n_tokens[3]
    np.testing.assert_allclose(pooled.mean[3], everything.mean[3], atol=1e-6)


def test_reasoning_pool_ignores_the_output_but_not_the_reasoning(reader):
    """Causal model + span: the answer after the scratchpad cannot move the pooled reasoning."""
    hook = "blocks.1.hook_resid_post"
    base = f"Please help. <{R}>I should answer carefully and briefly.</{R}>"
    texts = [
        base + "<OUTPUT>Sure, here it is.</OUTPUT>",
        base + "<OUTPUT><rejected/> No, I will not do that, for many long reasons.</OUTPUT>",
        base.replace("carefully", "quickly"),
    ]
    pooled = pool(iter_token_activations(reader, texts, [hook], span="reasoning"), len(texts))[hook]
    assert pooled.n_tokens[0] == pooled.n_tokens[1] > 5
    np.testing.assert_allclose(pooled.mean[0], pooled.mean[1], atol=1e-5)
    np.testing.assert_allclose(pooled.max[0], pooled.max[1], atol=1e-5)
    assert not np.allclose(pooled.mean[0], pooled.mean[2], atol=1e-3)


def test_empty_span_gives_zero_rows(reader):
    hook = "blocks.0.hook_resid_post"
    texts = [f"<{R}></{R}> after", f"<{R}>something here</{R}>"]
    pooled = pool(iter_token_activations(reader, texts, [hook], span="reasoning"), len(texts))[hook]
    expected_empty = len(kept_positions(reader, texts[0], "reasoning"))
    assert pooled.n_tokens[0] == expected_empty == 0
    for figure in ("mean", "max", "last", "active_tokens"):
        assert not getattr(pooled, figure)[0].any()
    assert pooled.n_tokens[1] > 0 and pooled.mean[1].any()
    only_empty = pool(iter_token_activations(reader, texts[:1], [hook], span="reasoning"), 1)
    assert hook in only_empty and only_empty[hook].n_tokens.tolist() == [0]
    assert not only_empty[hook].mean.any()


def test_pooling_is_batch_and_padding_invariant(reader):
    hooks = ["blocks.0.hook_mlp_in", "blocks.1.hook_resid_post"]
    short = "Tell me a short joke."
    long_text = " ".join(TEXTS * 4)
    alone = pool(iter_token_activations(reader, [short], hooks, span="all"), 1)
    mixed = pool(
        iter_token_activations(reader, [long_text, short, TEXTS[2]], hooks, span="all", batch_size=8), 3
    )
    for hook in hooks:
        assert mixed[hook].n_tokens[1] == alone[hook].n_tokens[0]
        assert mixed[hook].n_tokens[0] > 4 * alone[hook].n_tokens[0]  # the batch really was padded
        for figure in ("mean", "max", "last", "active_tokens"):
            np.testing.assert_allclose(
                getattr(mixed[hook], figure)[1], getattr(alone[hook], figure)[0], atol=1e-5, err_msg=figure
            )


def test_transforms_apply_before_pooling(reader):
    hook = "blocks.1.hook_resid_post"
    generator = torch.Generator().manual_seed(3)
    projection = torch.randn(reader.hidden_size, 24, generator=generator)

    def transform(acts):
        return torch.relu(acts @ projection - 0.5)

    pooled = pool(
        iter_token_activations(reader, TEXTS, [hook], span="all", batch_size=2),
        len(TEXTS),
        transforms={hook: transform},
    )[hook]
    assert pooled.mean.shape == (len(TEXTS), 24)
    expected = []
    for text in TEXTS:
        rows = reference(reader, text)[hook][kept_positions(reader, text, "all")]
        expected.append(manual_pool(transform(rows).numpy(), 24))
    check_pooled(pooled, expected, atol=1e-4)
    assert (pooled.active_tokens < pooled.n_tokens[:, None]).any()  # relu zeroes some: counts are informative


def test_truncation_is_recorded(reader):
    hook = "blocks.0.hook_resid_post"
    texts = ["tiny", TEXTS[2], "hi there", TEXTS[0], TEXTS[3]]
    lengths = [len(reader.tokenizer(t)["input_ids"]) for t in texts]
    max_tokens = lengths[4]  # exactly fits: not truncated
    assert lengths[0] < max_tokens and lengths[1] > max_tokens and lengths[3] > max_tokens
    stats = ExtractionStats()
    pooled = pool(
        iter_token_activations(
            reader, texts, [hook], span="all", max_tokens=max_tokens, stats=stats, batch_size=2
        ),
        len(texts),
    )[hook]
    assert sorted(stats.truncated) == [1, 3] == [i for i, n in enumerate(lengths) if n > max_tokens]
    assert stats.max_tokens == max_tokens
    assert stats.texts == len(texts)
    assert stats.tokens == sum(min(n, max_tokens) - 1 for n in lengths) == int(pooled.n_tokens.sum())
    rows = reference(reader, texts[1])[hook].numpy()
    np.testing.assert_allclose(pooled.mean[1], rows[1:max_tokens].mean(0), atol=1e-5)
    np.testing.assert_allclose(pooled.last[1], rows[max_tokens - 1], atol=1e-5)

    untouched = ExtractionStats()
    list(iter_token_activations(reader, texts, [hook], span="all", stats=untouched))
    assert untouched.truncated == []


# --- reasoning_char_span ---------------------------------------------------------------------------------


def test_span_one_block():
    text = f"Before. <{R}>the reasoning</{R}> after"
    start, end = reasoning_char_span(text)
    assert text[start:end] == "the reasoning"
    assert start == text.index(">") + 1 and end == text.index(f"</{R}>")


def test_span_unclosed_block_runs_to_end():
    text = f"x <{R}>cut off mid sentence"
    assert reasoning_char_span(text) == (len(f"x <{R}>"), len(text))


def test_span_unclosed_block_runs_over_a_quoted_output():
    text = f"<{R}>thinking <OUTPUT>answer</OUTPUT>"
    start, end = reasoning_char_span(text)
    assert text[start:end] == "thinking <OUTPUT>answer</OUTPUT>"


def test_span_several_blocks_from_first_open_to_last_close():
    text = f"<{R}>one</{R}>\n<{R}>two</{R}>\n<{R}>three</{R}><OUTPUT>ok</OUTPUT>"
    start, end = reasoning_char_span(text)
    assert text[start:end] == f"one</{R}>\n<{R}>two</{R}>\n<{R}>three"


def test_span_no_block_is_whole_text():
    text = "just a request, no tags"
    assert reasoning_char_span(text) == (0, len(text))
    assert reasoning_char_span("") == (0, 0)


def test_span_excludes_text_after_output():
    text = f"<{R}>real</{R}><OUTPUT>answer <{R}>fake</{R}></OUTPUT>"
    start, end = reasoning_char_span(text)
    assert text[start:end] == "real"
    assert end < text.index("<OUTPUT>")


def test_span_tags_are_case_and_space_tolerant():
    text = "< scratchpad_reasoning >inner</ SCRATCHPAD_REASONING ><output>x</output>"
    start, end = reasoning_char_span(text)
    assert text[start:end] == "inner"
