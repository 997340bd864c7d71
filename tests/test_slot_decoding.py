"""Continuous batching (``af_tasks.engine.slots``) and in-loop sampling (``af_tasks.engine.sampling``).

References are transformers' own: greedy rows must equal ``model.generate`` token for token (fp32, CPU),
the kept set of a sampled row must equal transformers' temperature → top-k → top-p warpers exactly, and
sampled tokens must follow the distribution ``generate`` samples from (chi-square tests over many draws:
the per-request streams are by design not torch's global generator, so equal seeds cannot give equal
tokens).
"""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.model]

VOCAB = 384
EOS = 5


def tiny_model(model_type: str, **overrides):
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from af_tasks.engine.tiny import TINY_LLAMA

    extra = {"sliding_window": None} if model_type == "mistral" else {}
    config = AutoConfig.for_model(model_type=model_type, vocab_size=VOCAB, **(TINY_LLAMA | extra | overrides))
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32).eval()
    model.generation_config.eos_token_id = EOS
    model.generation_config.pad_token_id = 0
    return model


def generate_greedy(model, prompt: list[int], new_tokens: int) -> list[int]:
    import torch

    out = model.generate(
        torch.tensor([prompt]), max_new_tokens=new_tokens, do_sample=False, pad_token_id=0, eos_token_id=EOS
    )[0, len(prompt) :].tolist()
    return out[: out.index(EOS) + 1] if EOS in out else out


def random_prompts(lengths, seed: int = 1) -> list[list[int]]:
    import torch

    generator = torch.Generator().manual_seed(seed)
    return [torch.randint(6, VOCAB, (n,), generator=generator).tolist() for n in lengths]


@pytest.mark.parametrize(
    ("model_type", "attention", "fuse", "pipelined"),
    [
        ("llama", "sdpa", False, False),
        ("mistral", "sdpa", False, False),
        ("qwen2", "sdpa", False, False),
        ("qwen3", "sdpa", False, False),
        ("mistral", "varlen", False, False),  # per-row lengths: the flash kernel's contract, on CPU
        ("qwen3", "varlen", True, False),
        ("llama", "flex", True, False),  # the CUDA defaults, run eagerly on CPU
        ("qwen2", "flex", True, False),  # biases fused too
        ("qwen3", "flex", True, False),
        ("llama", "sdpa", False, True),  # finish flags read one chunk behind, as on CUDA
        ("mistral", "varlen", True, True),
        ("llama", "grouped", False, False),  # keys split across programs, combined by log-sum-exp
        ("qwen3", "grouped", True, True),
    ],
)
def test_greedy_slots_equal_generate_while_slots_are_refilled(model_type, attention, fuse, pipelined):
    """7 requests of different prompt and answer lengths through 3 slots: every completion equals
    ``generate`` on its prompt alone, whatever ran in its slot before and beside it (with either
    decode attention, fused projections or not; a 300-token prompt spans several flex blocks; with
    the flags read as they are or one chunk behind)."""
    import torch

    from af_tasks.engine.slots import SlotDecoder, SlotRequest, decode_all

    model = tiny_model(model_type)
    prompts = random_prompts([7, 300, 3, 12, 19, 25, 9])
    budgets = [20, 5, 33, 12, 1, 40, 17]
    decoder = SlotDecoder(model, slots=3, max_len=64, eos_ids=[EOS], pad_id=0, attention=attention, fuse=fuse)
    with torch.inference_mode():
        results = decode_all(
            decoder, [SlotRequest(tuple(p), n) for p, n in zip(prompts, budgets, strict=True)], pipelined
        )
        references = [generate_greedy(model, p, n) for p, n in zip(prompts, budgets, strict=True)]
    assert [r.tokens for r in results] == references
    assert [r.stopped for r in results] == [ref[-1] == EOS for ref in references]


@pytest.mark.parametrize("pipelined", [False, True])
def test_eos_ends_a_row_and_its_slot_is_reused(pipelined):
    """A token the model emits early is made EOS: rows end there (``stopped``), shorter than their
    budget, and still match ``generate``; with 2 slots the third request runs in a freed slot (also
    when the flags are read a chunk behind: the old occupant's flags must not end the new one)."""
    import torch

    from af_tasks.engine.slots import SlotDecoder, SlotRequest, decode_all

    model = tiny_model("llama")
    prompts = random_prompts([6, 11, 8, 14], seed=3)
    with torch.inference_mode():
        free_run = generate_greedy(model, prompts[0], 12)
    eos = free_run[3]
    model.generation_config.eos_token_id = eos
    decoder = SlotDecoder(model, slots=2, max_len=64, eos_ids=[eos], pad_id=0)
    with torch.inference_mode():
        results = decode_all(decoder, [SlotRequest(tuple(p), 20) for p in prompts], pipelined)
        references = []
        for prompt in prompts:
            out = model.generate(torch.tensor([prompt]), max_new_tokens=20, do_sample=False, pad_token_id=0)
            out = out[0, len(prompt) :].tolist()
            references.append(out[: out.index(eos) + 1] if eos in out else out)
    assert [r.tokens for r in results] == references
    assert results[0].stopped and len(results[0].tokens) <= 4


def test_a_waiting_request_takes_a_slot_before_the_batch_drains():
    """Two slots, one long request and three short ones: the short ones are admitted one at a time
    into the slot the previous one left, while the long one is still decoding (continuous batching,
    not batches that wait for their longest row)."""
    import torch

    from af_tasks.engine.slots import SlotDecoder, SlotRequest, serve

    model = tiny_model("llama")
    prompts = random_prompts([9, 5, 6, 7], seed=4)
    requests = [SlotRequest(tuple(prompts[0]), 40, ignore_eos=True)]
    requests += [SlotRequest(tuple(p), 3, ignore_eos=True) for p in prompts[1:]]
    waiting = list(enumerate(requests))[::-1]
    admitted: list[tuple[int, bool]] = []  # (request, long one still decoding)
    finished: dict[int, list[int]] = {}

    def take(n, block):
        if not waiting:
            return None
        taken = [waiting.pop() for _ in range(min(n, len(waiting)))]
        admitted.extend((key, 0 not in finished) for key, _ in taken)
        return taken

    decoder = SlotDecoder(model, slots=2, max_len=64, eos_ids=[EOS], pad_id=0)
    with torch.inference_mode():
        serve(decoder, take, lambda key, result: finished.__setitem__(key, result.tokens))
    assert [key for key, _ in admitted] == [0, 1, 2, 3]
    assert all(long_running for _, long_running in admitted)
    assert [len(finished[i]) for i in range(4)] == [40, 3, 3, 3]


def test_pipelined_serving_reads_each_chunks_flags_after_launching_the_next():
    """The overlap ``serve`` promises on CUDA: every chunk's finish flags are read only once the
    following chunk has been launched (so the host's reading and admitting run while the device
    decodes), and all results still arrive, in full."""
    import torch

    from af_tasks.engine.slots import SlotDecoder, SlotRequest, decode_all

    model = tiny_model("llama")
    prompts = random_prompts([6, 9, 4, 7, 5], seed=21)
    budgets = [30, 3, 12, 1, 20]
    decoder = SlotDecoder(model, slots=2, max_len=64, eos_ids=[EOS], pad_id=0)
    events: list[tuple[str, int]] = []
    take_snapshot = decoder.snapshot

    class Recorded:
        def __init__(self, snapshot, number):
            self.snapshot, self.number = snapshot, number

        def finished(self, slots):
            events.append(("read", self.number))
            return self.snapshot.finished(slots)

    def snapshot():
        number = sum(kind == "launch" for kind, _ in events)
        events.append(("launch", number))
        return Recorded(take_snapshot(), number)

    decoder.snapshot = snapshot
    requests = [SlotRequest(tuple(p), n, ignore_eos=True) for p, n in zip(prompts, budgets, strict=True)]
    with torch.inference_mode():
        results = decode_all(decoder, requests, pipelined=True)
    assert [len(r.tokens) for r in results] == budgets
    reads = [number for kind, number in events if kind == "read"]
    assert reads, "no chunk's flags were read"
    for number in reads:  # chunk n read after chunk n + 1 launched
        assert events.index(("read", number)) > events.index(("launch", number + 1))


def test_a_longer_newcomer_grows_the_cache_without_touching_rows_in_flight():
    """The cache starts at 256 positions; a 300-token prompt admitted while another request is half
    way through its answer grows every slot's cache: the request in flight keeps its tokens and K/V
    and still equals ``generate``."""
    import torch

    from af_tasks.engine.slots import SlotDecoder, SlotRequest, decode_all

    model = tiny_model("llama")
    prompts = random_prompts([6, 5, 300], seed=8)
    budgets = [40, 2, 6]
    decoder = SlotDecoder(model, slots=2, max_len=16, eos_ids=[EOS], pad_id=0)
    requests = [SlotRequest(tuple(p), n, ignore_eos=True) for p, n in zip(prompts, budgets, strict=True)]
    with torch.inference_mode():
        results = decode_all(decoder, requests)
        references = [
            model.generate(
                torch.tensor([p]), max_new_tokens=n, min_new_tokens=n, do_sample=False, pad_token_id=0
            )[0, len(p) :].tolist()
            for p, n in zip(prompts, budgets, strict=True)
        ]
    assert decoder.max_len > 256  # it grew
    assert [r.tokens for r in results] == references


def test_the_cache_grows_with_the_answer_not_with_max_tokens():
    """A request asking for a million tokens that ends at EOS after a few never sizes the cache from
    its budget (it stays at one 256-position bucket), and a row whose answer crosses the cache's end
    mid-decode has it grown under it, still equal to ``generate``."""
    import torch

    from af_tasks.engine.slots import SlotDecoder, SlotRequest, decode_all

    model = tiny_model("llama")
    short, crossing = random_prompts([10, 250], seed=9)
    with torch.inference_mode():
        eos = generate_greedy(model, short, 12)[4]
    model.generation_config.eos_token_id = eos
    decoder = SlotDecoder(model, slots=2, max_len=16, eos_ids=[eos], pad_id=0)
    with torch.inference_mode():
        [ended] = decode_all(decoder, [SlotRequest(tuple(short), 10**6)])
        assert ended.stopped and len(ended.tokens) <= 5
        assert decoder.max_len == 256
        [crossed] = decode_all(decoder, [SlotRequest(tuple(crossing), 20, ignore_eos=True)])
        reference = model.generate(
            torch.tensor([crossing]), max_new_tokens=20, min_new_tokens=20, do_sample=False, pad_token_id=0
        )[0, len(crossing) :].tolist()
    assert decoder.max_len == 512
    assert crossed.tokens == reference


def test_a_cache_larger_than_memory_is_refused_in_one_line():
    """Slots x positions beyond what the machine holds: an ``EngineError`` naming the settings to
    lower, before anything is allocated (on CPU an oversized cache would meet the OOM killer)."""
    from af_tasks.engine.errors import EngineError
    from af_tasks.engine.slots import SlotDecoder

    model = tiny_model("llama")
    with pytest.raises(EngineError, match=r"KV cache of 1000000 slots x 100096 tokens .*--max-connections"):
        SlotDecoder(model, slots=10**6, max_len=10**5, eos_ids=[EOS], pad_id=0)


def shared_prefix_prompts(prefix_length: int, suffix_lengths, seed: int):
    """Prompts that share their first ``prefix_length`` tokens (an eval's system prompt), then differ."""
    [prefix] = random_prompts([prefix_length], seed=seed)
    suffixes = random_prompts(suffix_lengths, seed=seed + 1)
    for index, suffix in enumerate(suffixes):
        if suffix:
            suffix[0] = 6 + index  # distinct first tokens: the shared part is exactly the prefix
    return prefix, [prefix + suffix for suffix in suffixes]


@pytest.mark.parametrize("model_type", ["llama", "qwen3"])
def test_a_shared_prompt_prefix_is_computed_once_and_answers_equal_generate(model_type):
    """Batches admitted one after another: two prompts sharing a 40-token prefix (computed once, then
    each suffix), a third (only its suffix), the bare prefix (one token: the last is always
    prefilled), an unrelated prompt (whole; stored beside the first), one that shares the first
    prefix again (only its suffix) and one that continues the unrelated prompt (only its 3 new tokens). Every answer equals ``generate`` on its prompt alone; the tokens
    run through the model are exactly those the reuse leaves."""
    import torch

    from af_tasks.engine.slots import SlotDecoder, SlotRequest, serve

    model = tiny_model(model_type)
    prefix, (a, b, c, d) = shared_prefix_prompts(40, [9, 3, 17, 5], seed=11)
    [unrelated] = random_prompts([45], seed=13)
    follow_up = unrelated + [7, 8, 9]  # the lone unrelated prompt was stored whole after its prefill
    batches = [[a, b], [c], [prefix], [unrelated], [d], [follow_up]]
    expected = [40 + 9 + 3, 17, 1, 45, 5, 3]
    decoder = SlotDecoder(model, slots=2, max_len=64, eos_ids=[EOS], pad_id=0)
    waiting = list(reversed(batches))
    prefilled, answers = [], {}

    def take(n, block):
        if not block:
            return []
        if not waiting:
            return None
        prefilled.append(decoder.prefilled_tokens)
        return [(tuple(p), SlotRequest(tuple(p), 12)) for p in waiting.pop()]

    with torch.inference_mode():
        serve(decoder, take, lambda key, result: answers.__setitem__(key, result.tokens))
        references = {tuple(p): generate_greedy(model, p, 12) for batch in batches for p in batch}
    assert answers == references
    spent = [
        after - before
        for before, after in zip(prefilled, [*prefilled[1:], decoder.prefilled_tokens], strict=True)
    ]
    assert spent == expected


def test_two_system_prompts_in_one_batch_are_each_computed_once_and_the_oldest_is_dropped():
    """One admission of prompts under two different 40-token prefixes (an eval whose conditions differ
    in the system prompt): each prefix is computed once, each prompt then costs its suffix. With
    more prefixes stored than ``PREFIX_ENTRIES`` holds, the least recently used is dropped (a prompt
    under it costs its whole length again) and the recently used one kept; first tokens equal
    ``generate``'s throughout."""
    import torch

    from af_tasks.engine.prefixes import PREFIX_ENTRIES
    from af_tasks.engine.slots import SlotDecoder, SlotRequest

    model = tiny_model("llama")
    _, (a, c) = shared_prefix_prompts(40, [9, 17], seed=21)
    _, (b, d) = shared_prefix_prompts(40, [3, 5], seed=31)
    decoder = SlotDecoder(model, slots=4, max_len=64, eos_ids=[EOS], pad_id=0)
    with torch.inference_mode():
        decoder.admit([(slot, SlotRequest(tuple(p), 1)) for slot, p in enumerate([a, b, c, d])])
        assert decoder.prefilled_tokens == 2 * 40 + 9 + 3 + 17 + 5
        assert decoder.out[:4, 0].tolist() == [generate_greedy(model, p, 1)[0] for p in (a, b, c, d)]

        def spent(slot, prompt):
            before = decoder.prefilled_tokens
            decoder.admit([(slot, SlotRequest(tuple(prompt), 1))])
            assert decoder.out[slot, 0].item() == generate_greedy(model, prompt, 1)[0]
            return decoder.prefilled_tokens - before

        assert spent(0, a) == 9  # a's prefix is now the most recently used
        for seed in range(41, 41 + 10 * (PREFIX_ENTRIES - 1), 10):  # each pair stores a new prefix
            pair = shared_prefix_prompts(40, [2, 2], seed=seed)[1]
            decoder.admit([(0, SlotRequest(tuple(pair[0]), 1)), (1, SlotRequest(tuple(pair[1]), 1))])
        assert spent(1, random_prompts([20], seed=51)[0]) == 20  # too short to store: evicts nothing
        assert spent(2, a) == 9  # kept
        assert spent(3, b) == len(b)  # b's prefix, the least recently used, was dropped


def test_a_reused_prefix_leaves_the_same_cache_as_a_whole_prefill():
    """After admitting prompts with a shared prefix, every slot's K/V over its prompt equals a whole
    prefill's to float rounding (fp32), in every layer: the copied prefix, the suffix positions and
    the suffix's attention over the prefix (the last layer's K/V depend on the first's attention)."""
    import torch

    from af_tasks.engine.slots import SlotDecoder, SlotRequest

    model = tiny_model("qwen2")
    _, prompts = shared_prefix_prompts(40, [9, 1, 17], seed=12)
    decoders = {}
    for reuse in (True, False):
        decoders[reuse] = SlotDecoder(model, slots=3, max_len=64, eos_ids=[EOS], pad_id=0, reuse_prefix=reuse)
        with torch.inference_mode():
            decoders[reuse].admit([(slot, SlotRequest(tuple(p), 4)) for slot, p in enumerate(prompts)])
    assert decoders[True].prefilled_tokens == 40 + 9 + 1 + 17
    for slot, prompt in enumerate(prompts):
        for cache in ("keys", "values"):
            for reused, whole in zip(
                getattr(decoders[True], cache), getattr(decoders[False], cache), strict=True
            ):
                torch.testing.assert_close(
                    reused[slot, :, : len(prompt)], whole[slot, :, : len(prompt)], rtol=1e-5, atol=1e-6
                )


def test_no_prefix_is_stored_when_memory_is_short(monkeypatch):
    """With less memory left than a prefix's K/V need (ten times over), nothing is stored or computed
    apart, every prompt is prefilled whole, and answers still equal ``generate``."""
    import torch

    from af_tasks.engine import memory
    from af_tasks.engine.slots import SlotDecoder, SlotRequest, decode_all

    model = tiny_model("llama")
    _, prompts = shared_prefix_prompts(40, [9, 3, 17], seed=11)
    decoder, second = (SlotDecoder(model, slots=3, max_len=64, eos_ids=[EOS], pad_id=0) for _ in range(2))
    per_token = 2 * 2 * 2 * 16 * 4  # K and V x layers x KV heads x head dim x fp32 bytes
    monkeypatch.setattr(memory, "available_bytes", lambda device: 10 * 40 * per_token - 1)
    with torch.inference_mode():
        results = decode_all(decoder, [SlotRequest(tuple(p), 6) for p in prompts])
        references = [generate_greedy(model, p, 6) for p in prompts]
    assert not decoder.prefixes
    assert decoder.prefilled_tokens == sum(len(p) for p in prompts)
    assert [r.tokens for r in results] == references
    monkeypatch.setattr(memory, "available_bytes", lambda device: 10 * 40 * per_token)
    with torch.inference_mode():
        decode_all(second, [SlotRequest(tuple(p), 6) for p in prompts])
    assert second.prefilled_tokens == 40 + 9 + 3 + 17  # just enough: stored


def test_without_prefix_reuse_every_prompt_token_is_prefilled():
    """``reuse_prefix=False`` (the benchmarks' baseline arm): the same prompts cost their full length
    and give the same answers."""
    import torch

    from af_tasks.engine.slots import SlotDecoder, SlotRequest, decode_all

    model = tiny_model("llama")
    _, prompts = shared_prefix_prompts(40, [9, 3, 17, 5], seed=11)
    results = {}
    for reuse in (True, False):
        decoder = SlotDecoder(model, slots=3, max_len=64, eos_ids=[EOS], pad_id=0, reuse_prefix=reuse)
        with torch.inference_mode():
            results[reuse] = [
                r.tokens for r in decode_all(decoder, [SlotRequest(tuple(p), 8) for p in prompts])
            ]
        spent = decoder.prefilled_tokens
    assert results[True] == results[False]
    assert spent == sum(len(p) for p in prompts)


def test_kept_logits_equal_transformers_warpers():
    """Temperature → top-k → top-p per row, against transformers' warpers applied to each row alone:
    the same tokens kept and the same kept values."""
    import torch
    from transformers.generation.logits_process import (
        TemperatureLogitsWarper,
        TopKLogitsWarper,
        TopPLogitsWarper,
    )

    from af_tasks.engine.sampling import kept_logits

    generator = torch.Generator().manual_seed(0)
    settings = [(1.0, 0, 1.0), (0.7, 50, 1.0), (1.3, 0, 0.9), (0.5, 20, 0.8), (1.0, 5, 0.3), (2.0, 400, 0.95)]
    settings.append((1.0, 0, 0.0))  # top_p 0: only the likeliest token is kept (min_tokens_to_keep)
    logits = torch.randn(len(settings), VOCAB, generator=generator) * 3
    temperature = torch.tensor([t for t, _, _ in settings])
    top_k = torch.tensor([k for _, k, _ in settings])
    top_p = torch.tensor([p for _, _, p in settings])
    ours = kept_logits(logits, temperature, top_k, top_p)
    for row, (t, k, p) in enumerate(settings):
        expected = logits[row : row + 1]
        if t != 1.0:
            expected = TemperatureLogitsWarper(t)(None, expected)
        if k != 0:
            expected = TopKLogitsWarper(k)(None, expected)
        if p < 1.0:
            expected = TopPLogitsWarper(p)(None, expected)
        assert torch.equal(ours[row : row + 1], expected), settings[row]
    kept = torch.isfinite(ours).sum(-1).tolist()
    assert kept[0] == VOCAB and kept[1] == 50 and kept[4] <= 5 and kept[-1] == 1  # the filters did filter


def test_sampling_among_top_candidates_picks_what_the_full_sort_picks():
    """The top-k fast path (filters and draw over the largest logits only) chooses the same token
    as the full-vocabulary path for every row and seed, with per-row temperature, k and p."""
    import torch

    from af_tasks.engine.sampling import choose_tokens, mix32, split_seed

    rows = 512
    generator = torch.Generator().manual_seed(9)
    logits = torch.randn(rows, VOCAB, generator=generator) * 2
    temperature = torch.rand(rows, generator=generator) + 0.3
    temperature[::7] = 0  # some greedy rows
    top_k = torch.randint(1, 60, (rows,), generator=generator)
    top_p = torch.rand(rows, generator=generator) * 0.6 + 0.4
    top_p[::3] = 1.0
    lo, hi = (torch.tensor(h) for h in zip(*(split_seed(i * 7919 + 3) for i in range(rows)), strict=True))
    counter = torch.randint(0, 500, (rows,), generator=generator)
    keys = mix32(torch.arange(VOCAB))
    full = choose_tokens(logits, temperature, top_k, top_p, lo, hi, counter, keys)
    fast = choose_tokens(logits, temperature, top_k, top_p, lo, hi, counter, keys, candidates=64)
    assert torch.equal(full, fast)
    assert len(set(full.tolist())) > 50  # draws, not one token


def chi_square_p(observed: list[int], expected: list[float]) -> float:
    """Pearson chi-square p-value of counts against expected counts (bins with expectation < 5
    merged into one)."""
    from scipy.stats import chi2

    small_observed = sum(o for o, e in zip(observed, expected, strict=True) if e < 5)
    small_expected = sum(e for e in expected if e < 5)
    pairs = [(o, e) for o, e in zip(observed, expected, strict=True) if e >= 5]
    if small_expected > 0:
        pairs.append((small_observed, small_expected))
    statistic = sum((o - e) ** 2 / e for o, e in pairs)
    return float(chi2.sf(statistic, len(pairs) - 1))


def test_sampled_tokens_follow_the_kept_distribution():
    """20,000 draws from one row's logits (each draw its own seed) match softmax of the kept logits
    (chi-square p > 0.001), for plain temperature and for top-k + top-p; greedy rows take the argmax."""
    import torch

    from af_tasks.engine.sampling import choose_tokens, kept_logits, mix32, split_seed

    draws, vocab = 20_000, 24
    logits = (torch.randn(vocab, generator=torch.Generator().manual_seed(5)) * 1.5).expand(draws, vocab)
    seeds = [split_seed(seed * 0x9E3779B97F4A7C15 + 11) for seed in range(draws)]
    lo, hi = (torch.tensor(half) for half in zip(*seeds, strict=True))
    keys = mix32(torch.arange(vocab))
    for temperature, top_k, top_p in [(0.8, 0, 1.0), (1.2, 10, 0.85)]:
        t = torch.full((draws,), temperature)
        k = torch.full((draws,), top_k)
        p = torch.full((draws,), top_p)
        tokens = choose_tokens(logits, t, k, p, lo, hi, torch.zeros(draws, dtype=torch.long), keys)
        probabilities = kept_logits(logits[:1], t[:1], k[:1], p[:1]).softmax(-1)[0]
        counts = torch.bincount(tokens, minlength=vocab)
        assert counts[probabilities == 0].sum() == 0  # nothing outside the kept set
        assert chi_square_p(counts.tolist(), (probabilities * draws).tolist()) > 1e-3
    greedy = choose_tokens(
        logits[:4], torch.zeros(4), k[:4], p[:4], lo[:4], hi[:4], torch.zeros(4).long(), keys
    )
    assert greedy.tolist() == [int(logits[0].argmax())] * 4


def test_streams_differ_by_seed_and_position_and_repeat_exactly():
    """The uniforms of a (seed, position) are fixed numbers: equal for equal inputs, different for a
    different seed or token position, and spread evenly over (0, 1)."""
    import torch

    from af_tasks.engine.sampling import mix32, uniforms

    keys = mix32(torch.arange(4096))

    def draw(lo, hi, position):
        return uniforms(torch.tensor([lo]), torch.tensor([hi]), torch.tensor([position]), keys)[0]

    assert torch.equal(draw(7, 1, 3), draw(7, 1, 3))
    assert not torch.equal(draw(7, 1, 3), draw(8, 1, 3))
    assert not torch.equal(draw(7, 1, 3), draw(7, 2, 3))
    assert not torch.equal(draw(7, 1, 3), draw(7, 1, 4))
    values = draw(7, 1, 3)
    assert float(values.min()) > 0 and float(values.max()) < 1
    counts = torch.histc(values, bins=16, min=0, max=1)
    assert chi_square_p(counts.long().tolist(), [4096 / 16] * 16) > 1e-3


def test_sampled_completions_match_generate_in_distribution():
    """The same prompt sampled 800 times by the slot decoder (top-k 8, temperature 0.9) and by
    ``model.generate``: the first and second tokens' frequencies agree (two-sample chi-square)."""
    import torch
    from scipy.stats import chi2_contingency

    from af_tasks.engine.slots import SlotDecoder, SlotRequest, decode_all

    model = tiny_model("llama")
    [prompt] = random_prompts([10], seed=6)
    draws = 800
    requests = [
        SlotRequest(tuple(prompt), 2, temperature=0.9, top_k=8, seed=i, ignore_eos=True) for i in range(draws)
    ]
    decoder = SlotDecoder(model, slots=draws, max_len=16, eos_ids=[EOS], pad_id=0)
    with torch.inference_mode():
        ours = [r.tokens for r in decode_all(decoder, requests)]
        torch.manual_seed(0)
        theirs = model.generate(
            torch.tensor([prompt] * draws),
            max_new_tokens=2,
            min_new_tokens=2,
            do_sample=True,
            temperature=0.9,
            top_k=8,
            top_p=1.0,
            pad_token_id=0,
        )[:, len(prompt) :].tolist()
    for position in (0, 1):
        a = [row[position] for row in ours]
        b = [row[position] for row in theirs]
        tokens = sorted(set(a) | set(b))
        table = [[a.count(t) for t in tokens], [b.count(t) for t in tokens]]
        assert len(tokens) > 3  # sampled, not greedy
        assert chi2_contingency(table).pvalue > 1e-3, (position, table)


def test_a_request_samples_the_same_completion_whatever_its_batch():
    """A seeded request's completion depends on its seed, not on its batch-mates or its slot: alone in
    one slot it equals the same request placed third among four in a 4-slot decoder."""
    import torch

    from af_tasks.engine.slots import SlotDecoder, SlotRequest, decode_all

    model = tiny_model("qwen3")
    prompts = random_prompts([8, 13, 5, 10], seed=7)
    requests = [
        SlotRequest(tuple(p), 12, temperature=1.0, top_p=0.9, seed=100 + i) for i, p in enumerate(prompts)
    ]
    with torch.inference_mode():
        together = decode_all(SlotDecoder(model, slots=4, max_len=32, eos_ids=[EOS], pad_id=0), requests)
        alone = decode_all(SlotDecoder(model, slots=1, max_len=32, eos_ids=[EOS], pad_id=0), requests[2:3])
        reseeded = decode_all(
            SlotDecoder(model, slots=1, max_len=32, eos_ids=[EOS], pad_id=0),
            [SlotRequest(tuple(prompts[2]), 12, temperature=1.0, top_p=0.9, seed=999)],
        )
    assert together[2].tokens == alone[0].tokens
    assert reseeded[0].tokens != alone[0].tokens


def test_engine_seeds_repeat_per_call_and_differ_within_one(embedded_model_dir):
    """Through the engine: with ``seed`` set, calling again draws the same completions, a chat given
    twice in one call draws two different ones, and another seed draws others."""
    from af_tasks.engine.generate import GenerationEngine, SamplingParams

    chat = [{"role": "user", "content": "Tell me a short story about a cat."}]
    params = SamplingParams(max_new_tokens=16, greedy=False, temperature=1.0, seed=42)
    engine = GenerationEngine.load(str(embedded_model_dir), device="cpu")
    first = [c.token_ids for c in engine.generate([chat, chat], params)]
    again = [c.token_ids for c in engine.generate([chat, chat], params)]
    reseeded = [
        c.token_ids for c in engine.generate([chat], SamplingParams(**{**params.__dict__, "seed": 43}))
    ]
    assert engine.slots and first == again
    assert first[0] != first[1]
    assert reseeded[0] != first[0]


def exact_attention(query, keys, values, used, scale):
    """Row by row in float64: query [rows, heads, d] over keys[row, h // groups, :used[row]]."""
    import torch

    groups = query.shape[1] // keys.shape[1]
    return torch.stack(
        [
            torch.nn.functional.scaled_dot_product_attention(
                query[row][:, None].double(),
                keys[row].repeat_interleave(groups, 0)[:, :count].double(),
                values[row].repeat_interleave(groups, 0)[:, :count].double(),
                scale=scale,
            )[:, 0]
            for row, count in enumerate(used.tolist())
        ]
    )


@pytest.mark.parametrize("programs", [1, 24, 10_000])
def test_split_keys_combined_by_log_sum_exp_equal_whole_attention(programs):
    """The grouped decode kernel's arithmetic (``split_reference``): a row's keys cut into splits as
    ``split_plan`` cuts them (one split, some, one per block), each split's softmax and log-sum-exp,
    then ``combine_splits``, equal attention over the row's keys at once; rows end on a split boundary,
    inside one, after one key, at the cache's end."""
    import torch

    from af_tasks.engine.split_keys import split_plan, split_reference

    torch.manual_seed(3)
    rows, kv_heads, groups, length, dim, block = 6, 2, 4, 200, 16, 16
    query = torch.randn(rows, kv_heads * groups, dim)
    keys, values = torch.randn(rows + 2, kv_heads, length, dim), torch.randn(rows + 2, kv_heads, length, dim)
    splits, per_split = split_plan(rows, kv_heads, length, block, programs)
    used = torch.tensor([1, per_split, per_split + 1, 2 * per_split - 3, 131, length], dtype=torch.int32)
    used = used.clamp(1, length)
    got = split_reference(query, keys, values, used, length, 0.25, programs, block)
    assert torch.allclose(got.double(), exact_attention(query, keys, values, used, 0.25), atol=1e-5)
    assert splits == {1: 1, 24: 2, 10_000: 13}[programs]


def test_split_plan_covers_the_keys_in_whole_blocks_with_no_empty_split():
    """Splits are whole blocks, together cover ``length`` keys, each holds at least one key of a row
    that uses them all, and their number reaches the programs aimed for where the keys allow."""
    from af_tasks.engine.split_keys import split_plan

    for rows, kv_heads, length, block, programs in [
        (1, 8, 1024, 64, 528),
        (128, 8, 1024, 64, 528),
        (3, 2, 256, 64, 64),
        (1, 1, 1, 64, 100),
        (2, 8, 1000, 64, 96),
    ]:
        splits, per_split = split_plan(rows, kv_heads, length, block, programs)
        assert per_split % block == 0
        assert (splits - 1) * per_split < length <= splits * per_split
        blocks = -(-length // block)
        assert splits == blocks or rows * kv_heads * splits >= programs


def test_grouped_kernel_equals_its_reference_in_the_triton_interpreter():
    """The Triton kernel itself (``af_tasks.engine.grouped_decode``) run by Triton's CPU interpreter
    equals ``split_reference`` for one split and many, for a query not contiguous in its last
    dimension, and traced by ``torch.compile`` (where Triton
    is installed; on the GPU
    ``benchmarks/decode_gpu.py``'s check compares the compiled kernel with fp32 attention)."""
    import json
    import os
    import subprocess
    import sys

    pytest.importorskip("triton")
    script = """
import json, torch
from af_tasks.engine.split_keys import split_reference
from af_tasks.engine.grouped_decode import grouped_decode_attention
torch.manual_seed(0)
rows, kv, groups, length, dim = 5, 2, 4, 200, 32
q = torch.randn(rows, kv * groups, dim)
k, v = torch.randn(rows + 1, kv, length, dim), torch.randn(rows + 1, kv, length, dim)
used = torch.tensor([1, 7, 64, 65, 200], dtype=torch.int32)
errors = {}
for programs in (1, 40, 1000):
    got = grouped_decode_attention(q, k, v, used, length, 0.3, programs, 16)
    errors[programs] = (got - split_reference(q, k, v, used, length, 0.3, programs, 16)).abs().max().item()
strided = torch.randn(rows, dim, kv * groups).transpose(1, 2)  # a query whose last dimension is not contiguous
got = grouped_decode_attention(strided, k, v, used, length, 0.3, 40, 16)
errors["strided"] = (got - split_reference(strided, k, v, used, length, 0.3, 40, 16)).abs().max().item()
compiled = torch.compile(grouped_decode_attention, backend="aot_eager", fullgraph=True, dynamic=True)
got = compiled(q, k, v, used, length, 0.3, 40, 16)  # opaque to tracing, as in the compiled decode step
errors["compiled"] = (got - split_reference(q, k, v, used, length, 0.3, 40, 16)).abs().max().item()
print(json.dumps(errors))
"""
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=600
    )
    assert done.returncode == 0, done.stderr[-2000:]
    errors = json.loads(done.stdout.strip().splitlines()[-1])
    assert max(errors.values()) < 1e-5, errors


def test_grouped_attention_refuses_a_head_size_its_kernel_cannot_tile():
    """The kernel's tiles need a power-of-two head size: another one is refused when the decoder is
    built, naming the size, not at the first GPU step."""
    from af_tasks.engine.slots import SlotDecoder

    model = tiny_model("llama", hidden_size=48)  # 4 heads of 12
    with pytest.raises(ValueError, match="power-of-two head size, not 12"):
        SlotDecoder(model, slots=2, max_len=16, eos_ids=[EOS], pad_id=0, attention="grouped")
    SlotDecoder(model, slots=2, max_len=16, eos_ids=[EOS], pad_id=0, attention="varlen")  # others run


def test_default_attention_follows_the_measured_slot_ranges(monkeypatch):
    """On CUDA the default is the kernel measured fastest at that slot count: flex up to
    ``FLEX_MAX_SLOTS``, grouped above it (only where Triton runs and the head size is a power of two,
    which its tile needs), varlen as grouped's fallback, sdpa where neither kernel runs; on CPU always
    sdpa. The kernels' availability is set here (no GPU in CI)."""
    import torch

    from af_tasks.engine import decode_attention
    from af_tasks.engine.slots import FLEX_MAX_SLOTS, GROUPED_MIN_SLOTS, default_attention

    cuda, half = torch.device("cuda"), torch.bfloat16
    available = {"grouped": True, "varlen": True}
    monkeypatch.setattr(decode_attention, "grouped_available", lambda *_: available["grouped"])
    monkeypatch.setattr(decode_attention, "varlen_available", lambda *_: available["varlen"])
    assert default_attention(cuda, half, FLEX_MAX_SLOTS, 128) == "flex"
    assert GROUPED_MIN_SLOTS == FLEX_MAX_SLOTS + 1
    for slots in (GROUPED_MIN_SLOTS, 32, 256):
        assert default_attention(cuda, half, slots, 128) == "grouped"
        assert default_attention(cuda, half, slots, 96) == "varlen"  # not a power of two
    available["grouped"] = False
    assert default_attention(cuda, half, 256, 128) == "varlen"
    available["varlen"] = False
    assert default_attention(cuda, half, 256, 128) == "sdpa"
    assert default_attention(torch.device("cpu"), half, 256, 128) == "sdpa"


def test_compiled_decoding_compiles_one_layer_for_every_depth(monkeypatch):
    """With ``compile`` (the CUDA default; here through inductor on CPU) the decode step compiles one
    decoder layer that serves every layer: greedy answers equal eager decoding's in fp32 while slots are
    refilled, and a model of another depth decodes without tracing anything again (compiling the whole
    step traced each depth anew: 32 layers took ~20 s of tracing on every process start)."""
    import torch
    from torch._dynamo.utils import counters

    from af_tasks.engine import slots
    from af_tasks.engine.slots import SlotDecoder, SlotRequest, decode_all

    monkeypatch.setattr(slots, "_COMPILED", {})
    torch._dynamo.reset()
    counters.clear()
    prompts = random_prompts([3, 17, 9, 30, 5, 12, 21])
    requests = [SlotRequest(tuple(p), n) for p, n in zip(prompts, (9, 4, 14, 6, 11, 2, 8), strict=True)]

    def answers(model, compile: bool):
        decoder = SlotDecoder(model, slots=3, max_len=32, eos_ids=[EOS], pad_id=0, compile=compile)
        assert decoder.attention == "sdpa"  # CPU; the CUDA attentions share the compiled layer
        with torch.inference_mode():
            return [r.tokens for r in decode_all(decoder, requests)]

    deep = tiny_model("mistral", num_hidden_layers=4)
    assert answers(deep, compile=True) == answers(deep, compile=False)
    traced = counters["stats"]["unique_graphs"]
    assert traced >= 1
    shallow = tiny_model("mistral", num_hidden_layers=2)
    assert answers(shallow, compile=True) == answers(shallow, compile=False)
    assert counters["stats"]["unique_graphs"] == traced
