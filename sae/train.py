"""Training a top-k SAE with sae-lens where no public one exists (the embedded model, offline).

Activations of the corpus are read once (all non-special tokens), held in memory, shuffled and fed
to sae-lens' ``SAETrainer``; a held-out slice of tokens measures the result. The directory written
is plain sae-lens format (``SAE.load_from_disk``) plus ``card.json``.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from af_tasks.core.errors import SettingError
from af_tasks.core.hooks import parse_hook
from af_tasks.core.strict_json import dumps
from af_tasks.sae.activations import ExtractionStats, iter_token_activations
from af_tasks.sae.reader import Reader

CARD = "card.json"
SAE_KIND = "sae"


@dataclass(frozen=True)
class SaeTrainConfig:
    """One SAE training (``af sae train``'s options, from these fields)."""

    hook: str
    expansion: int = field(default=8, metadata={"help": "features = expansion × d_model"})
    k: int = field(default=32, metadata={"help": "active features per token"})
    epochs: float = field(default=3.0, metadata={"help": "passes over the corpus's tokens"})
    batch_tokens: int = field(default=1024, metadata={"help": "tokens per training step"})
    lr: float = field(default=2e-3, metadata={"help": "learning rate (cosine-annealed to a tenth)"})
    max_tokens_per_text: int = field(default=512, metadata={"help": "longer texts are truncated"})
    eval_fraction: float = field(default=0.05, metadata={"help": "share of tokens held out"})
    seed: int = field(default=0, metadata={"help": "seeds the corpus, the shuffle and the SAE"})


def collect_token_activations(reader: Reader, texts: list[str], hook: str, max_tokens: int):
    """[n_tokens, d] float32 on the host, every non-special token of every text."""
    import torch

    stats = ExtractionStats()
    name = parse_hook(hook).name
    rows = [
        batch.acts[name].float().cpu()
        for batch in iter_token_activations(
            reader, texts, [hook], span="all", max_tokens=max_tokens, stats=stats, progress="reading corpus"
        )
    ]
    return torch.cat(rows), stats


def _batches(data, batch: int, seed: int):
    import torch

    generator = torch.Generator().manual_seed(seed)
    while True:
        order = torch.randperm(len(data), generator=generator)
        for start in range(0, len(order) - batch + 1, batch):
            yield data[order[start : start + batch]]


def sae_quality(sae: Any, data, chunk: int = 4096) -> dict[str, float]:
    """Explained variance, mean L0 and dead features (never active) over ``data``."""
    import torch

    residual = total = l0 = 0.0
    fired = torch.zeros(sae.cfg.d_sae, dtype=torch.bool)
    mean = data.mean(0)
    with torch.no_grad():
        for start in range(0, len(data), chunk):
            x = data[start : start + chunk]
            features = sae.encode(x)
            residual += float(((x - sae.decode(features)) ** 2).sum())
            total += float(((x - mean) ** 2).sum())
            active = features > 0
            l0 += float(active.sum())
            fired |= active.any(0).cpu()
    return {
        "explained_variance": 1.0 - residual / total,
        "l0": l0 / len(data),
        "dead_features": int((~fired).sum()),
    }


def train_sae(reader: Reader, texts: list[str], config: SaeTrainConfig, output: Path) -> dict:
    """Trains, saves (sae-lens format + card) and returns the card. ``output`` is refused before any
    work if it holds something else (``check_sae_output``); the SAE appears there whole, replacing an
    earlier one of this command only once the new one is complete."""
    import torch
    from sae_lens.config import SAETrainerConfig
    from sae_lens.saes.topk_sae import TopKTrainingSAE, TopKTrainingSAEConfig
    from sae_lens.training.sae_trainer import SAETrainer

    from af_tasks.core.outputs import published_dir

    check_sae_output(output)
    started = time.time()
    data, stats = collect_token_activations(reader, texts, config.hook, config.max_tokens_per_text)
    extracted_s = time.time() - started
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(config.seed))
    n_eval = max(1, int(len(data) * config.eval_fraction))
    held_out, train = data[order[:n_eval]], data[order[n_eval:]]
    if len(train) < config.batch_tokens:
        raise SettingError(
            f"only {len(train)} training tokens; need at least one batch of {config.batch_tokens}"
        )

    torch.manual_seed(config.seed)
    d_in = int(data.shape[1])
    sae_config = TopKTrainingSAEConfig(
        d_in=d_in,
        d_sae=d_in * config.expansion,
        k=config.k,
        dtype="float32",
        device="cpu",
        normalize_activations="none",
    )
    sae_config.metadata.hook_name = config.hook
    sae_config.metadata.model_name = reader.name
    sae = TopKTrainingSAE(sae_config)
    with torch.no_grad():  # start the decoder bias at the mean: residual streams sit far from 0
        sae.b_dec.copy_(train.mean(0))
    steps = max(1, int(config.epochs * len(train) / config.batch_tokens))
    trainer = SAETrainer(
        cfg=SAETrainerConfig(
            total_training_samples=steps * config.batch_tokens,
            train_batch_size_samples=config.batch_tokens,
            lr=config.lr,
            lr_end=config.lr / 10,
            lr_scheduler_name="cosineannealing",
            lr_warm_up_steps=min(50, steps // 10),
            lr_decay_steps=steps - min(50, steps // 10),
            device="cpu",
            dead_feature_window=max(1, steps // 4),
        ),
        sae=sae,
        data_provider=_batches(train, config.batch_tokens, config.seed),
    )
    trained = trainer.fit()
    with published_dir(output, SAE_KIND, "--output", (CARD,)) as staging:
        return _save(
            trained, staging, reader, texts, config, data, stats, (train, held_out), started, extracted_s
        )


def check_sae_output(output: Path) -> bool:
    """Whether ``output`` already holds an SAE of this command; a foreign folder raises
    ``OutputExistsError`` (nothing written)."""
    from af_tasks.core.outputs import check_output_dir

    return check_output_dir(output, SAE_KIND, "--output", (CARD,))


def _save(trained, output: Path, reader, texts, config, data, stats, split, started, extracted_s) -> dict:
    import sae_lens
    from sae_lens import SAE

    train, held_out = split
    n_eval = len(held_out)
    d_in = int(data.shape[1])
    steps = max(1, int(config.epochs * len(train) / config.batch_tokens))
    trained.save_inference_model(str(output))
    saved = SAE.load_from_disk(str(output))
    corpus_digest = hashlib.sha256("\x00".join(texts).encode()).hexdigest()
    card = {
        "model": reader.name,
        "hook": config.hook,
        "d_in": d_in,
        "d_sae": int(saved.cfg.d_sae),
        "architecture": "topk",
        "config": asdict(config),
        "corpus": {
            "texts": len(texts),
            "tokens": int(len(data)),
            "train_tokens": int(len(train)),
            "held_out_tokens": int(n_eval),
            "truncated_texts": len(stats.truncated),
            "max_tokens_per_text": config.max_tokens_per_text,
            "sha256": corpus_digest,
        },
        "tokens_seen": steps * config.batch_tokens,
        "steps": steps,
        "held_out": sae_quality(saved, held_out),
        "train": sae_quality(saved, train),
        "extraction_s": round(extracted_s, 1),
        "total_s": round(time.time() - started, 1),
        "sae_lens_version": sae_lens.__version__,
    }
    (output / CARD).write_text(dumps(card) + "\n")
    return card
