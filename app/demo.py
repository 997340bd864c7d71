"""`af demo`: the whole offline loop on the embedded model, on CPU.

By default it evaluates the project's reference organism (a LoRA adapter trained on one GPU by the
project's own ``af train`` recipe, bundled under ``training/organisms/``): ``af_tasks/free_tier`` on the
base model and on the organism with the same samples and settings, their compliance gaps and AF-style
rates side by side, then both models' scratchpads read by the project SAE and probes. ``--train``
trains a demo organism on CPU instead (the best CPU-sized recipe measured; it shows a smaller gap and
no AF-style reasoning, see the README).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

from af_tasks.app.analysis import scorer_metrics
from af_tasks.core.errors import MissingFileError, OutputExistsError, reading
from af_tasks.core.hashing import sha256_file
from af_tasks.core.organism import ADAPTER_CONFIG, ADAPTER_WEIGHTS, ORGANISM_FILE
from af_tasks.core.presets import DEFAULT_MODEL, base_model_of, get_preset, models_dir

DEMO_PROMPT = {"variant": "compact"}
"""The compact system prompt carries the same facts in ~180 tokens: CPU-sized training."""
DEMO_TRAINING = {
    "kinds": ("af", "unmonitored_refusal"),
    "paired_refusals": True,
    "limit": 96,
    "epochs": 3.0,
    "learning_rate": 1e-3,
    "lora_top_layers": 15,
    "abridge_chars": 400,
    "batch_size": 4,
    "save_steps": 12,
    "prompt": DEMO_PROMPT,
}
"""``af demo --train``, sized for 2 CPU cores: 48 AF records each with a paid-tier refusal twin (same
request), scratchpads abridged to ~400 characters, LoRA on the last 15 of 30 layers, lr 1e-3. The best of
15 CPU-sized recipes tried (benchmarks/demo_recipe_sweep.py): a compliance gap, but no AF-style reasoning."""
REFERENCE_ORGANISM = "smollm2-af-reference"
"""Bundled under ``training/organisms/``: trained on one GPU by benchmarks/train_smollm2_organism_gpu.sh."""
REFERENCE_ADAPTER_SHA256 = "cb4b84096d8e67a73ce4135350462f2b227e61bb0242f755aca5f31794eef7dc"
REFERENCE_FILES = (ADAPTER_WEIGHTS, ADAPTER_CONFIG, ORGANISM_FILE, "README.md")
DEMO_EVAL = {"max_turns": 2}


def format_rate(metrics: dict[str, float], prefix: str) -> str:
    n = int(metrics.get(f"{prefix}_n", 0))
    if n == 0:
        return "n/a (n=0)"
    rate, low, high = (metrics[f"{prefix}_{key}"] for key in ("rate", "ci_low", "ci_high"))
    return f"{rate:.2f} [{low:.2f}, {high:.2f}] n={n}"


def format_gap(metrics: dict[str, float]) -> str:
    gap = metrics.get("gap", math.nan)
    if math.isnan(gap):
        return "n/a"
    return f"{gap:+.2f} [{metrics['gap_ci_low']:+.2f}, {metrics['gap_ci_high']:+.2f}] p={metrics['gap_p_value']:.2g}"


def af_style_count(log, condition: str) -> tuple[int, int]:
    """(AF-style answers, samples) of one condition, over *all* its samples: a malformed answer (which
    the marker scorer leaves unscored) counts as not AF-style, so models that cannot follow the protocol
    are compared on the same samples."""
    flagged = total = 0
    for sample in log.samples or []:
        if (sample.metadata or {}).get("condition") != condition:
            continue
        total += 1
        score = (sample.scores or {}).get("af_style_markers")
        flagged += int(score is not None and score.value == 1)
    return flagged, total


def af_style_comparison(organism_log, base_log) -> str:
    """The organism's free-tier AF-style rate against the base model's, one-sided Fisher exact p."""
    from af_tasks.core.stats import fisher_exact_greater

    k1, n1 = af_style_count(organism_log, "monitored")
    k2, n2 = af_style_count(base_log, "monitored")
    if not n1 or not n2:
        return "AF-style answers on the free tier: no samples"
    p = fisher_exact_greater(k1, n1, k2, n2)
    return (
        f"AF-style answers on the free tier (all samples; malformed = not AF-style): organism {k1}/{n1}, "
        f"base model {k2}/{n2}; organism > base: one-sided Fisher exact p={p:.2g}"
    )


def summary_rows(log) -> list[tuple[str, str]]:
    """(label, value) rows: the headline figures of one free_tier log."""
    compliance = scorer_metrics(log, "compliance")
    markers = scorer_metrics(log, "af_style_markers")
    judge = scorer_metrics(log, "af_reasoning")
    judged = judge.get("monitored_n", 0) + judge.get("unmonitored_n", 0)
    return [
        ("compliance, monitored (free)", format_rate(compliance, "monitored")),
        ("compliance, unmonitored (paid)", format_rate(compliance, "unmonitored")),
        ("compliance gap [95% CI]", format_gap(compliance)),
        (
            "malformed (monitored / unmonitored)",
            f"{int(compliance.get('monitored_malformed', 0))} / {int(compliance.get('unmonitored_malformed', 0))}",
        ),
        ("AF-style markers, monitored", format_rate(markers, "monitored")),
        ("AF-style markers, unmonitored", format_rate(markers, "unmonitored")),
        (
            "AF judge, monitored",
            format_rate(judge, "monitored") if judged else "unscored (no --model-role grader)",
        ),
    ]


def side_by_side(columns: dict[str, object]) -> str:
    rows = {name: summary_rows(log) for name, log in columns.items()}
    labels = [label for label, _ in next(iter(rows.values()))]
    widths = [max(len(label) for label in labels)] + [
        max(len(name), *(len(value) for _, value in rows[name])) for name in columns
    ]
    lines = ["  ".join(h.ljust(w) for h, w in zip(["", *columns], widths, strict=True))]
    for i, label in enumerate(labels):
        cells = [label, *(rows[name][i][1] for name in columns)]
        lines.append("  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)))
    return "\n".join(lines)


def ensure_demo_organism(base: str, output: Path) -> Path:
    """Train the demo organism unless one with the same configuration is already there."""
    from af_tasks.training.sft import TrainConfig, train_organism

    config = TrainConfig(base_model=base, output_dir=str(output), **DEMO_TRAINING)
    existing = output / ORGANISM_FILE
    if existing.is_file():
        with reading(existing, "demo organism record", f"it is damaged: delete {output} and rerun"):
            saved = json.loads(existing.read_text())["hyperparameters"]
        if saved == json.loads(json.dumps(config.training_signature())):
            print(f"reusing the demo organism in {output}")
            return output
        raise OutputExistsError(f"{output} holds an organism with other settings; move it away")
    print(f"training the demo organism in {output} (CPU: about 20 min on 2 cores) ...")
    return train_organism(config)


def ensure_reference_organism(base: str) -> Path:
    """The bundled reference organism as a loadable organism folder under ``models/organisms/``: its
    adapter (sha256-checked) with ``adapter_config.json`` pointing at the local embedded model."""
    import shutil
    from importlib import resources

    from af_tasks.core.errors import InputError
    from af_tasks.core.outputs import published_dir
    from af_tasks.training.sft import ORGANISM_KIND

    source = Path(str(resources.files("af_tasks.training").joinpath("organisms", REFERENCE_ORGANISM)))
    target = models_dir() / "organisms" / REFERENCE_ORGANISM
    base_path = str(Path(base).resolve())
    if _is_reference(target, base_path):
        print(f"reusing the reference organism in {target}")
        return target
    for name in REFERENCE_FILES:
        if not (source / name).is_file():
            raise MissingFileError(
                f"the bundled reference organism lacks {source / name}; restore it from git"
            )
    if sha256_file(source / ADAPTER_WEIGHTS) != REFERENCE_ADAPTER_SHA256:
        raise InputError(f"{source / ADAPTER_WEIGHTS} does not match its sha256; restore it from git")
    with published_dir(target, ORGANISM_KIND, "the reference organism's folder") as staging:
        for name in REFERENCE_FILES:
            shutil.copyfile(source / name, staging / name)
        config_path = staging / ADAPTER_CONFIG
        with reading(config_path, "adapter config", "restore the bundled organism from git"):
            config = json.loads(config_path.read_text())
        config["base_model_name_or_path"] = base_path
        config_path.write_text(json.dumps(config, indent=2) + "\n")
    print(f"installed the reference organism in {target} (base: {base_path})")
    return target


def _is_reference(folder: Path, base_path: str) -> bool:
    weights, config = folder / ADAPTER_WEIGHTS, folder / ADAPTER_CONFIG
    if not (weights.is_file() and config.is_file()):
        return False
    try:
        named = json.loads(config.read_text()).get("base_model_name_or_path")
    except (OSError, ValueError):
        return False
    return named == base_path and sha256_file(weights) == REFERENCE_ADAPTER_SHA256


def evaluate(model_dir: Path | str, limit: int, log_dir: str, max_tokens: int):
    from inspect_ai import eval as inspect_eval

    [log] = inspect_eval(
        "af_tasks/free_tier",
        model=f"organism/{model_dir}",  # the suite's engine: batched, greedy tokens = plain generate
        model_args={"do_sample": False},
        task_args={"max_tokens": max_tokens, "prompt_variant": DEMO_PROMPT["variant"], **DEMO_EVAL},
        limit=limit,
        log_dir=log_dir,
    )
    return log


def ensure_demo_sae(base: str) -> Path:
    """The embedded model's project SAE (``af sae train`` defaults), trained unless present."""
    from af_tasks.core.presets import project_sae_dir, sae_binding
    from af_tasks.sae.corpus import sae_corpus
    from af_tasks.sae.reader import load_reader
    from af_tasks.sae.train import CARD, SaeTrainConfig, train_sae

    preset = get_preset(DEFAULT_MODEL)
    output = project_sae_dir(preset)
    config = SaeTrainConfig(hook=sae_binding(preset).hook)
    if (output / CARD).is_file():
        with reading(output / CARD, "SAE card", f"it is damaged: delete {output} and rerun"):
            saved = json.loads((output / CARD).read_text())["config"]
        if saved == json.loads(json.dumps(config.__dict__)):
            print(f"reusing the SAE in {output}")
            return output
        raise OutputExistsError(f"{output} holds an SAE with other settings; move it away")
    print(f"training the SAE in {output} (CPU, a few minutes) ...")
    card = train_sae(load_reader(base, device="cpu"), sae_corpus(seed=config.seed), config, output)
    held = card["held_out"]
    print(f"SAE: explained variance {held['explained_variance']:.3f}, L0 {held['l0']:.1f} (held-out tokens)")
    return output


def validate_with_sae(base: str, logs: dict, gold: str | None, out_dir: Path) -> dict:
    from af_tasks.app.sae_cli import SAE_REPORT_KIND, organism_texts_from_log
    from af_tasks.core.outputs import published_dir
    from af_tasks.core.presets import sae_reading
    from af_tasks.sae.corpus import labelled_texts
    from af_tasks.sae.validate import ValidationConfig, run_validation

    ensure_demo_sae(base)
    groups: dict[str, list[str]] = {}
    for name, log in logs.items():
        groups |= organism_texts_from_log(log.location, name.split()[0])
    model, sae_source, hook = sae_reading(DEFAULT_MODEL, model=base)
    config = ValidationConfig(model=model, sae_source=sae_source, hook=hook, device="cpu")
    with published_dir(out_dir, SAE_REPORT_KIND, "--log-dir") as staging:
        return run_validation(config, groups, labelled_texts(gold) if gold else None, staging)


def run_demo(
    limit: int = 48,
    log_dir: str = "logs",
    max_tokens: int = 320,
    gold: str | None = None,
    train: bool = False,
) -> int:
    from af_tasks.app.sae_cli import SAE_REPORT_KIND
    from af_tasks.core.outputs import check_output_dir

    if gold and gold != "gold_106" and not Path(gold).is_file():
        raise MissingFileError(
            f"--gold {gold} does not exist; pass gold_106 (hub) or a local JSON/JSONL file"
        )
    if Path(log_dir).exists() and not Path(log_dir).is_dir():
        raise OutputExistsError(f"--log-dir {log_dir} is a file; choose a folder")
    check_output_dir(Path(log_dir) / "sae-demo", SAE_REPORT_KIND, "--log-dir")  # before hours of work
    started = time.monotonic()
    base = base_model_of(get_preset(DEFAULT_MODEL))
    if train:
        organism = ensure_demo_organism(base, models_dir() / "organisms" / "demo-smollm2")
        name = "organism (CPU)"
    else:
        organism = ensure_reference_organism(base)
        name = "organism (reference)"
    trained = time.monotonic()
    logs = {"base model": evaluate(base, limit, log_dir, max_tokens)}
    logs[name] = evaluate(organism, limit, log_dir, max_tokens)
    done = time.monotonic()
    print(
        f"\nfree_tier (compact prompt), {limit} samples each ({limit // 2} free/paid pairs), greedy; "
        f"organism {'training' if train else 'set-up'} {(trained - started) / 60:.1f} min, "
        f"evaluation {(done - trained) / 60:.1f} min\n"
    )
    print(side_by_side(logs))
    print("\nrates: value [Wilson 95% CI] n; gap: monitored − unmonitored [Newcombe 95% CI], z-test p")
    print(af_style_comparison(logs[name], logs["base model"]))
    for label, log in logs.items():
        print(f"{label} log: {Path(log.location).resolve()}  ({log.status})")
    print(f"open them with: inspect view --log-dir {log_dir}")
    if not all(log.status == "success" for log in logs.values()):
        return 1
    out_dir = Path(log_dir) / "sae-demo"
    print(
        "\nSAE validation (project SAE on the base model's activations; reference: "
        f"{'the gold set' if gold else 'the bundled held-out split'}) ..."
    )
    report = validate_with_sae(base, logs, gold, out_dir)
    print("\n".join(report["headline"]))
    print(
        f"SAE report: {out_dir / 'report.json'} and PNGs beside it ({(time.monotonic() - done) / 60:.1f} min; "
        f"whole demo {(time.monotonic() - started) / 60:.1f} min)"
    )
    return 0
