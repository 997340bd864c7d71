"""sae.saes (loading, sparsify conversion, compatibility) and sae.train (a tiny sae-lens SAE)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from af_tasks.sae.reader import load_reader
from af_tasks.sae.saes import SaeError, check_compatible, load_sae, sae_hook_name

D_IN = 64  # the tiny Llama's hidden size
K = 4


def write_sparsify(
    folder: Path, d_in: int = D_IN, expansion: int = 4, seed: int = 0, drop: tuple = ()
) -> dict:
    from safetensors.torch import save_file

    generator = torch.Generator().manual_seed(seed)
    d_sae = d_in * expansion
    tensors = {
        "encoder.weight": torch.randn(d_sae, d_in, generator=generator) / d_in**0.5,
        "encoder.bias": torch.randn(d_sae, generator=generator) * 0.1,
        "W_dec": torch.randn(d_sae, d_in, generator=generator) / d_in**0.5,
        "b_dec": torch.randn(d_in, generator=generator) * 0.1,
    }
    folder.mkdir(parents=True, exist_ok=True)
    cfg = {
        "k": K,
        "expansion_factor": expansion,
        "normalize_decoder": True,
        "num_latents": 0,
        "multi_topk": False,
        "skip_connection": False,
    }
    (folder / "cfg.json").write_text(json.dumps(cfg))
    save_file({name: t for name, t in tensors.items() if name not in drop}, str(folder / "sae.safetensors"))
    return tensors


def sparsify_encode(w: dict, x: torch.Tensor) -> torch.Tensor:
    """sparsify's own encode: top-k of relu(encoder(x - b_dec)), everything else zero."""
    pre = torch.relu((x - w["b_dec"]) @ w["encoder.weight"].T + w["encoder.bias"])
    values, indices = pre.topk(K, dim=-1)
    return torch.zeros_like(pre).scatter(-1, indices, values)


def sparsify_decode(w: dict, acts: torch.Tensor) -> torch.Tensor:
    return acts @ w["W_dec"] + w["b_dec"]


def test_sparsify_conversion_is_exact(tmp_path):
    folder = tmp_path / "layers.2"
    weights = write_sparsify(folder)
    sae = load_sae(str(folder))
    x = torch.randn(50, D_IN, generator=torch.Generator().manual_seed(1)) * 2
    with torch.no_grad():
        got = sae.encode(x)
        want = sparsify_encode(weights, x)
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
        assert ((got > 0).sum(-1) <= K).all() and ((got > 0).sum(-1) == K).float().mean() > 0.9
        torch.testing.assert_close(sae.decode(want), sparsify_decode(weights, want), atol=1e-5, rtol=1e-5)
    assert sae.cfg.d_in == D_IN and sae.cfg.d_sae == 4 * D_IN
    assert sae_hook_name(sae) == "blocks.2.hook_resid_post"


def test_sparsify_folder_without_layer_name_has_no_hook(tmp_path):
    folder = tmp_path / "my-sae"
    write_sparsify(folder)
    assert not sae_hook_name(load_sae(str(folder)))


@pytest.mark.parametrize("drop", [("b_dec",), ("encoder.bias", "W_dec")])
def test_sparsify_missing_tensors_are_named(tmp_path, drop):
    folder = tmp_path / "layers.1"
    write_sparsify(folder, drop=drop)
    with pytest.raises(SaeError) as error:
        load_sae(str(folder))
    for name in drop:
        assert name in str(error.value)
    assert "sae.safetensors" in str(error.value)


def test_not_an_sae_directory(tmp_path):
    with pytest.raises(SaeError, match="no cfg.json"):
        load_sae(str(tmp_path))
    (tmp_path / "cfg.json").write_text("{}")
    with pytest.raises(SaeError, match="neither"):
        load_sae(str(tmp_path))
    with pytest.raises(SaeError, match="neither a directory"):
        load_sae(str(tmp_path / "does-not-exist"))


# --- a tiny SAE trained with sae-lens ---------------------------------------------------------------------

TRAIN_TEXTS = [
    f"Request {i}: please explain how {topic} works, step by step, for a beginner."
    for i, topic in enumerate(
        [
            "bread",
            "a bicycle",
            "rain",
            "a compiler",
            "chess",
            "taxes",
            "a vaccine",
            "the stock market",
            "a rainbow",
            "a guitar",
            "sleep",
            "an election",
            "a volcano",
            "email",
            "a bridge",
            "gravity",
            "a garden",
            "music",
            "a battery",
            "a library",
        ]
    )
]
TRAIN_HOOK = "blocks.0.hook_resid_post"


@pytest.fixture(scope="module")
def reader(tiny_llama_dir):
    return load_reader(str(tiny_llama_dir), device="cpu")


@pytest.fixture(scope="module")
def trained(reader, tmp_path_factory):
    from af_tasks.sae.train import SaeTrainConfig, train_sae

    out = tmp_path_factory.mktemp("trained-sae") / "sae"
    config = SaeTrainConfig(hook=TRAIN_HOOK, expansion=2, k=K, epochs=1, batch_tokens=64)
    card = train_sae(reader, TRAIN_TEXTS, config, out)
    return out, card, config


def reference_tokens(reader, texts):
    """The hook's rows in the order extraction produces them (texts by length, position 0 dropped),
    from output_hidden_states (resid_post of layer 0 = hidden_states[1])."""
    rows = []
    with torch.no_grad():
        for i in sorted(range(len(texts)), key=lambda i: len(texts[i])):
            hidden = reader.model(
                **reader.tokenizer(texts[i], return_tensors="pt"), output_hidden_states=True
            )
            rows.append(hidden.hidden_states[1][0, 1:])
    return torch.cat(rows)


def quality(sae, x):
    with torch.no_grad():
        features = sae.encode(x)
        residual = ((x - sae.decode(features)) ** 2).sum()
        total = ((x - x.mean(0)) ** 2).sum()
    return {
        "explained_variance": float(1 - residual / total),
        "l0": float((features > 0).float().sum(1).mean()),
        "dead_features": int((~(features > 0).any(0)).sum()),
    }


def test_trained_sae_round_trips_through_sae_lens(trained):
    from sae_lens import SAE

    out, _, _ = trained
    assert (out / "cfg.json").is_file() and (out / "sae_weights.safetensors").is_file()
    ours = load_sae(str(out))
    theirs = SAE.load_from_disk(str(out))
    x = torch.randn(30, D_IN, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(ours.encode(x), theirs.encode(x))
        assert ((ours.encode(x) > 0).sum(-1) <= K).all()
    assert ours.cfg.d_in == D_IN and ours.cfg.d_sae == 2 * D_IN
    assert sae_hook_name(ours) == TRAIN_HOOK


def test_trained_sae_card_matches_an_independent_recount(trained, reader):
    out, card, config = trained
    assert json.loads((out / "card.json").read_text()) == card
    data = reference_tokens(reader, TRAIN_TEXTS)
    n = len(data)
    assert card["corpus"]["tokens"] == n
    assert card["corpus"]["texts"] == len(TRAIN_TEXTS)
    assert card["corpus"]["truncated_texts"] == 0
    n_eval = max(1, int(n * config.eval_fraction))
    assert card["corpus"]["held_out_tokens"] == n_eval and card["corpus"]["train_tokens"] == n - n_eval
    steps = max(1, int(config.epochs * (n - n_eval) / config.batch_tokens))
    assert card["steps"] == steps and card["tokens_seen"] == steps * config.batch_tokens
    assert (card["hook"], card["d_in"], card["d_sae"]) == (TRAIN_HOOK, D_IN, 2 * D_IN)

    sae = load_sae(str(out))
    order = torch.randperm(n, generator=torch.Generator().manual_seed(config.seed))
    held_out, train = data[order[:n_eval]], data[order[n_eval:]]
    for name, part in (("held_out", held_out), ("train", train)):
        want = quality(sae, part)
        got = card[name]
        assert set(got) >= {"l0", "explained_variance", "dead_features"}
        assert got["l0"] == pytest.approx(want["l0"], abs=1e-4)
        assert got["explained_variance"] == pytest.approx(want["explained_variance"], abs=1e-3)
        assert got["dead_features"] == want["dead_features"]
        assert K - 1 <= got["l0"] <= K
        assert 0 <= got["dead_features"] < 2 * D_IN


# --- compatibility ----------------------------------------------------------------------------------------


def test_check_compatible_names_both_sides(tmp_path, reader):
    narrow = tmp_path / "layers.1"
    write_sparsify(narrow, d_in=32)
    sae = load_sae(str(narrow))
    with pytest.raises(SaeError) as error:
        check_compatible(sae, "blocks.1.hook_resid_post", reader.hidden_size, "tiny-llama", "narrow-sae")
    message = str(error.value)
    assert all(part in message for part in ("d_in=32", "hidden_size=64", "tiny-llama", "narrow-sae"))

    at_two = tmp_path / "layers.2"
    write_sparsify(at_two)
    sae = load_sae(str(at_two))
    with pytest.raises(SaeError) as error:
        check_compatible(sae, "blocks.1.hook_resid_post", reader.hidden_size, "tiny-llama", "sae-at-2")
    message = str(error.value)
    assert all(
        part in message for part in ("blocks.2.hook_resid_post", "blocks.1.hook_resid_post", "sae-at-2")
    )
    with pytest.raises(SaeError):
        check_compatible(sae, "blocks.2.hook_mlp_out", reader.hidden_size, "tiny-llama", "sae-at-2")
    # the same hook point, under either name, passes
    check_compatible(sae, "blocks.2.hook_resid_post", reader.hidden_size, "tiny-llama", "sae-at-2")
    check_compatible(sae, "layers.2", reader.hidden_size, "tiny-llama", "sae-at-2")


def test_check_compatible_with_trained_sae(trained, reader):
    sae = load_sae(str(trained[0]))
    check_compatible(sae, TRAIN_HOOK, reader.hidden_size, reader.name, "trained")
    with pytest.raises(SaeError, match="blocks.1.hook_resid_pre"):
        check_compatible(sae, "blocks.1.hook_resid_pre", reader.hidden_size, reader.name, "trained")


# --- hf:<owner>/<repo>/<subfolder> through the real hub client, offline -----------------------------------

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def offline_hub(monkeypatch, cache: Path) -> None:
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    # sae.saes calls snapshot_download without cache_dir, so the constant (read at import) must follow
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(cache))


def test_hub_sparsify_sae_from_a_filled_cache(tmp_path, monkeypatch):
    cache = tmp_path / "hub-cache"
    repo = cache / "models--some-owner--tiny-saes"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(COMMIT)
    weights = write_sparsify(repo / "snapshots" / COMMIT / "layers.2", seed=5)
    write_sparsify(repo / "snapshots" / COMMIT / "layers.1", seed=6)
    offline_hub(monkeypatch, cache)

    sae = load_sae("hf:some-owner/tiny-saes/layers.2")
    assert sae_hook_name(sae) == "blocks.2.hook_resid_post"
    x = torch.randn(20, D_IN, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        torch.testing.assert_close(sae.encode(x), sparsify_encode(weights, x), atol=1e-5, rtol=1e-5)
    assert sae_hook_name(load_sae("hf:some-owner/tiny-saes/layers.1")) == "blocks.1.hook_resid_post"


def test_hub_sae_lens_sae_from_a_filled_cache(tmp_path, monkeypatch, trained):
    from sae_lens import SAE

    cache = tmp_path / "hub-cache"
    repo = cache / "models--owner--trained"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(COMMIT)
    shutil.copytree(trained[0], repo / "snapshots" / COMMIT / "resid0")
    offline_hub(monkeypatch, cache)
    sae = load_sae("hf:owner/trained/resid0")
    x = torch.randn(10, D_IN, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        torch.testing.assert_close(sae.encode(x), SAE.load_from_disk(str(trained[0])).encode(x))


def test_hub_cache_from_the_environment_is_honoured(tmp_path, monkeypatch):
    cache = tmp_path / "hub-cache"
    repo = cache / "models--some-owner--env-saes"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(COMMIT)
    write_sparsify(repo / "snapshots" / COMMIT / "layers.2")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))  # the environment only, as af/models.py supports
    assert sae_hook_name(load_sae("hf:some-owner/env-saes/layers.2")) == "blocks.2.hook_resid_post"


def test_unreachable_hub_sae_is_an_sae_error(tmp_path, monkeypatch):
    offline_hub(monkeypatch, tmp_path / "empty-cache")
    with pytest.raises(SaeError) as error:
        load_sae("hf:nobody/missing-saes/layers.3")
    assert "nobody/missing-saes" in str(error.value)
    with pytest.raises(SaeError, match="expected hf:<owner>/<repo>"):
        load_sae("hf:just-a-name")


def test_unreachable_registry_sae_is_an_sae_error(tmp_path, monkeypatch):
    offline_hub(monkeypatch, tmp_path / "empty-cache")
    with pytest.raises(SaeError) as error:
        load_sae("no-such-release:blocks.0.hook_resid_post")
    assert "no-such-release" in str(error.value) and "blocks.0.hook_resid_post" in str(error.value)
