"""The one organism loader: ``OrganismDir.resolve`` (core), ``load_organism`` and ``merge_organism``
(engine), and the engine, the SAE reader and the trainer loading through them."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import torch
from test_hf_models import make_lora_organism

from af_tasks.core.organism import OrganismDir, OrganismError
from af_tasks.engine.generate import GenerationEngine
from af_tasks.engine.loading import load_organism, merge_organism
from af_tasks.sae.reader import load_reader
from af_tasks.training.sft import TrainConfig, load_base, train_organism


def fake_model(folder: Path) -> Path:
    """A directory that resolves as a plain model (resolution reads no weights)."""
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    return folder


def fake_adapter(folder: Path, base: str, tokenizer: bool = True, card: str | None = None) -> Path:
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": base}))
    if tokenizer:
        (folder / "tokenizer_config.json").write_text("{}")
    if card is not None:
        (folder / "organism.json").write_text(card)
    return folder


# --- resolution (pure) -------------------------------------------------------------------------------


def test_a_plain_model_dir_and_a_hub_id_resolve_to_themselves(tmp_path):
    model = fake_model(tmp_path / "model")
    organism = OrganismDir.resolve(str(model))
    assert organism == OrganismDir(
        base=str(model.resolve()), tokenizer_source=str(model.resolve()), name=str(model)
    )
    assert organism.adapter is None and organism.card is None
    hub = OrganismDir.resolve("some-org/some-model")
    assert (hub.base, hub.adapter, hub.tokenizer_source, hub.name) == (
        "some-org/some-model",
        None,
        "some-org/some-model",
        "some-org/some-model",
    )


def test_an_adapter_dir_names_its_base_tokenizer_beside_it_and_card(tmp_path):
    base = fake_model(tmp_path / "base")
    adapter = fake_adapter(tmp_path / "organism", str(base), card='{"seed": 3}')
    organism = OrganismDir.resolve(str(adapter))
    assert organism.base == str(base)
    assert organism.adapter == adapter
    assert organism.tokenizer_source == str(adapter)  # training saves the tokenizer beside the adapter
    assert organism.card == {"seed": 3}
    assert organism.name == f"{base}+{adapter}"
    explicit = OrganismDir.resolve(str(base), str(adapter))  # base given, adapter given
    assert (explicit.base, explicit.adapter, explicit.tokenizer_source, explicit.card) == (
        str(base),
        adapter,
        str(adapter),
        {"seed": 3},
    )


def test_an_adapter_dir_without_a_tokenizer_uses_the_base_tokenizer(tmp_path):
    base = fake_model(tmp_path / "base")
    adapter = fake_adapter(tmp_path / "organism", str(base), tokenizer=False)
    organism = OrganismDir.resolve(str(adapter))
    assert organism.tokenizer_source == str(base) and organism.card is None


def test_relative_base_paths_resolve_to_absolute_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fake_model(tmp_path / "models" / "base")
    plain = OrganismDir.resolve("models/base")
    assert plain.base == str((tmp_path / "models" / "base").resolve()) and plain.name == "models/base"
    fake_adapter(tmp_path / "organism", "./models/base")
    organism = OrganismDir.resolve("organism")
    assert organism.base == str((tmp_path / "models" / "base").resolve())
    assert organism.name == "./models/base+organism"  # shown as named
    fake_adapter(tmp_path / "stray", "./models/missing")
    with pytest.raises(
        OrganismError, match=r"stray/adapter_config.json: base model ./models/missing: no such"
    ):
        OrganismDir.resolve("stray")


def test_a_missing_or_wrong_directory_is_named(tmp_path):
    with pytest.raises(OrganismError, match=r"missing-dir: no such model directory"):
        OrganismDir.resolve(str(tmp_path / "missing-dir"))
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(OrganismError, match=r"file.txt: not a directory"):
        OrganismDir.resolve(str(tmp_path / "file.txt"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(OrganismError, match=r"empty: not a model or organism directory"):
        OrganismDir.resolve(str(tmp_path / "empty"))


def test_an_adapter_dir_without_adapter_config_is_refused(tmp_path):
    base = fake_model(tmp_path / "base")
    (tmp_path / "not-adapter").mkdir()
    (tmp_path / "not-adapter" / "adapter_model.safetensors").write_bytes(b"")
    with pytest.raises(OrganismError, match=r"not-adapter: not a LoRA adapter directory \(no adapter_config"):
        OrganismDir.resolve(str(base), str(tmp_path / "not-adapter"))
    nameless = tmp_path / "nameless"
    nameless.mkdir()
    (nameless / "adapter_config.json").write_text('{"r": 4}')
    with pytest.raises(
        OrganismError, match=r"nameless/adapter_config.json: names no base_model_name_or_path"
    ):
        OrganismDir.resolve(str(nameless))


@pytest.mark.parametrize("text", ['{"seed": 0', "[1, 2]", b"\xff\xfe"])
def test_a_corrupt_organism_json_or_adapter_config_names_the_file(tmp_path, text):
    base = fake_model(tmp_path / "base")
    adapter = fake_adapter(tmp_path / "organism", str(base))
    card = adapter / "organism.json"
    card.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(
        OrganismError, match=re.escape(str(card)) + r": (invalid JSON|expected a JSON object|could not)"
    ):
        OrganismDir.resolve(str(adapter))
    card.unlink()
    (adapter / "adapter_config.json").write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(OrganismError, match=re.escape(str(adapter / "adapter_config.json")) + ": "):
        OrganismDir.resolve(str(adapter))
    with pytest.raises(OrganismError, match=re.escape(str(adapter / "adapter_config.json")) + ": "):
        OrganismDir.resolve(str(base), str(adapter))  # an adapter given beside its base is read too


# --- loading: damaged weights are named ------------------------------------------------------------


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_a_truncated_model_safetensors_is_named_by_every_loader(tiny_llama_dir, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_llama_dir, broken)
    truncate(broken / "model.safetensors")
    named = re.escape(str(broken.resolve() / "model.safetensors")) + " is damaged or truncated"
    with pytest.raises(OrganismError, match=named):
        load_organism(OrganismDir.resolve(str(broken)), device="cpu")
    with pytest.raises(OrganismError, match=named):
        GenerationEngine.load(str(broken), device="cpu")
    with pytest.raises(OrganismError, match=named):
        load_reader(str(broken), device="cpu")
    with pytest.raises(OrganismError, match=named):
        load_base(str(broken))


def test_a_truncated_adapter_safetensors_is_named(tiny_llama_dir, tmp_path):
    adapter = make_lora_organism(tiny_llama_dir, tmp_path / "organism")
    truncate(adapter / "adapter_model.safetensors")
    with pytest.raises(OrganismError, match=re.escape(str(adapter / "adapter_model.safetensors"))):
        GenerationEngine.load(str(adapter), device="cpu")


# --- one merge: engine, reader and trainer agree ---------------------------------------------------


def reference_merge(base: Path, adapter: Path) -> dict[str, torch.Tensor]:
    """peft's own merge, done here without the loader."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    return PeftModel.from_pretrained(model, str(adapter)).merge_and_unload().state_dict()


def saved_weights(folder: Path) -> dict[str, torch.Tensor]:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).state_dict()


def assert_same_weights(*state_dicts: dict[str, torch.Tensor]) -> None:
    first = state_dicts[0]
    for other in state_dicts[1:]:
        assert other.keys() == first.keys()
        assert all(torch.equal(other[name], first[name]) for name in first)


def test_engine_reader_and_merge_export_give_the_same_merged_weights(tiny_llama_dir, tmp_path):
    from transformers import AutoTokenizer

    adapter = make_lora_organism(tiny_llama_dir, tmp_path / "organism")
    tokenizer = AutoTokenizer.from_pretrained(adapter)
    template = "{# the organism's own template #}" + tokenizer.chat_template
    tokenizer.chat_template = template
    tokenizer.save_pretrained(adapter)  # the organism's tokenizer differs from its base's
    reference = reference_merge(tiny_llama_dir, adapter)
    base = saved_weights(tiny_llama_dir)
    assert any(not torch.equal(reference[n], base[n]) for n in reference if "q_proj" in n)  # adapter matters

    engine = GenerationEngine.load(str(adapter), device="cpu")
    reader = load_reader(str(adapter), device="cpu")
    merged = merge_organism(adapter, tmp_path / "exported" / "merged")  # what the experiment calls
    assert merged == tmp_path / "exported" / "merged"
    assert not any("lora" in name for name in saved_weights(merged))
    assert_same_weights(
        reference, engine.model.state_dict(), reader.model.state_dict(), saved_weights(merged)
    )
    assert engine.tokenizer.chat_template == reader.tokenizer.chat_template == template
    assert AutoTokenizer.from_pretrained(merged).chat_template == template
    assert not list((tmp_path / "exported").glob(".*"))  # no staging folder left behind


def test_merge_export_writes_config_last_and_refuses_a_plain_model(tiny_llama_dir, tmp_path, monkeypatch):
    import af_tasks.engine.loading as loading

    adapter = make_lora_organism(tiny_llama_dir, tmp_path / "organism")
    moved = []
    real_replace = loading.os.replace
    monkeypatch.setattr(
        loading.os, "replace", lambda src, dst: (moved.append(Path(dst).name), real_replace(src, dst))
    )
    merge_organism(str(adapter), tmp_path / "merged")
    assert "model.safetensors" in moved and moved[-1] == "config.json"
    with pytest.raises(OrganismError, match="not a LoRA adapter directory, nothing to merge"):
        merge_organism(str(tiny_llama_dir), tmp_path / "other")
    assert not (tmp_path / "other").exists()


@pytest.mark.train
def test_the_trainers_merge_equals_the_engines_and_the_readers(tiny_llama_dir, tmp_path):
    config = TrainConfig(
        base_model=str(tiny_llama_dir),
        output_dir=str(tmp_path / "trained"),
        limit=4,
        batch_size=4,
        max_steps=1,
        max_length=1024,
        learning_rate=1e-2,
        lora_r=4,
        lora_alpha=8,
        prompt={"variant": "compact"},
        merge=True,
    )
    output = train_organism(config)
    organism = OrganismDir.resolve(str(output))
    assert organism.card is not None and organism.card["merged_dir"] == str(output / "merged")
    engine = GenerationEngine.load(str(output), device="cpu")
    reader = load_reader(str(output), device="cpu")
    trained = saved_weights(output / "merged")
    assert_same_weights(reference_merge(tiny_llama_dir, output), trained)
    assert_same_weights(trained, engine.model.state_dict(), reader.model.state_dict())
    base = saved_weights(tiny_llama_dir)
    assert any(not torch.equal(trained[n], base[n]) for n in trained if "q_proj" in n)  # training moved it
