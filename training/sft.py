"""LoRA supervised fine-tuning of organisms with trl + peft (compute core, no Inspect import).

The output directory is an ordinary PEFT adapter directory (adapter + tokenizer) plus
``organism.json``, so ``inspect eval ... --model hf/<dir>`` loads it directly. Every input row is
validated before any model is loaded; an interrupted run resumes from its last checkpoint.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from af_tasks.core.errors import SettingError, reading
from af_tasks.core.hashing import sha256_file
from af_tasks.core.model_card import hub_id, model_argument, model_card
from af_tasks.core.organism import ADAPTER_WEIGHTS, ORGANISM_FILE, OrganismDir, OrganismError
from af_tasks.core.prompting import PromptConfig
from af_tasks.core.records import (
    ReasoningRecord,
    RecordError,
    chat_example,
    load_seed_set,
    records_from_rows,
    with_paired_refusals,
)
from af_tasks.core.rows import read_rows
from af_tasks.core.styles import KINDS, ORGANISM_KINDS

PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
CHECKPOINTS = "checkpoints"
RUN_CONFIG = "run_config.json"
SPEED_OPTIONS = (
    "gradient_checkpointing",
    "padding_free",
    "liger_kernels",
    "compile_layers",
    "varlen_attention",
)
"""TrainConfig fields that change speed and memory, not what is learned: a resumed run may change them."""
TRAINING_LOGS = "logs"
"""Folder of the organism directory that ``--report-to tensorboard`` writes its event files into."""
COMPILE_BREAK_EVEN = 1.1e16
"""Parameters × tokens a training process will see from which compiled layers are the default on CUDA.
Below it the compiles cost more than the faster steps save on a machine whose inductor cache does not
hold them yet: the default organism run at 7B (4.2e15: 568k tokens, 126 steps) took 94 s to train
compiled against 67 s eager on an H200 (85 s against 119 s for the whole command; BENCHMARKS.md), the
steady compiled step ~25 % shorter than the eager one. Break-even: about 2.6 such runs' compute."""
COMPILED_PAD_MULTIPLE = 8
"""Padded batches are padded to a multiple of this when the layers run compiled: inductor's graph for
varying lengths assumes the alignment (or its absence) of the length it was compiled at, and a batch
that breaks the assumption recompiles (12–20 s at 7B on an H200); the pads are masked and cost ≤ 7
tokens a row."""
REPORTERS: dict[str, tuple[str, ...]] = {"wandb": ("wandb",), "tensorboard": ("tensorboard", "tensorboardX")}
"""Each ``--report-to`` integration and the packages that provide it (any one of them)."""
NOT_LEARNED = ("output_dir", "merge", "save_steps", "report_to")
"""TrainConfig fields that say where things go, not what is learned: not part of the signature."""


@dataclass
class TrainConfig:
    """Hyperparameters and inputs of one organism. Defaults are the seed's (r=16, α=32, 3 epochs,
    lr 2e-5); LoRA commonly wants ~1e-4–2e-4, which is the researcher's choice."""

    base_model: str
    output_dir: str = field(metadata={"flag": "--output", "help": "organism directory to write"})
    data: str | None = field(
        default=None, metadata={"help": "records or chat JSONL (default: the bundled seed set)"}
    )
    """Records JSONL (the seed format) or chat JSONL (prompt/completion); None = bundled seed set."""
    kinds: tuple[str, ...] = field(
        default=ORGANISM_KINDS, metadata={"help": "record kinds to train on", "choices": tuple(KINDS)}
    )
    limit: int | None = field(default=None, metadata={"help": "first N examples (kinds interleaved)"})
    epochs: float = field(default=3.0, metadata={"help": "training epochs"})
    learning_rate: float = field(
        default=2e-5, metadata={"flag": "--lr", "help": "seed default; LoRA often wants 1e-4–2e-4"}
    )
    lora_r: int = field(default=16, metadata={"help": "LoRA rank"})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha"})
    lora_dropout: float = 0.05
    target_modules: str | list[str] = field(default_factory=lambda: list(PROJECTIONS))
    """Default: every attention and MLP projection of Llama-family blocks (Mistral, Llama, Qwen,
    SmolLM2); "all-linear" lets peft find them for other architectures."""
    abridge_chars: int | None = field(
        default=None, metadata={"help": "train on abridged scratchpads (CPU demos)"}
    )
    """Train on abridged scratchpads (opening + closing sentences, ~N chars): CPU-sized demos only."""
    paired_refusals: bool = field(
        default=False,
        metadata={"help": "give each AF record a paid-tier refusal twin with the same request"},
    )
    """Each AF (free-tier) record is followed by a paid-tier twin asking the same request, answered with
    an unmonitored_refusal record's reasoning and a generic refusal: the tier tag is then the only
    signal separating the two answers (the demo's CPU recipe). Needs both kinds in ``kinds``."""
    lora_top_layers: int | None = field(default=None, metadata={"help": "adapt only the last N layers"})
    """Adapt only the last N decoder layers (backward stops there: ~2x faster CPU training)."""
    batch_size: int = field(default=4, metadata={"help": "examples per device step"})
    grad_accum: int = field(default=1, metadata={"help": "gradient accumulation steps"})
    max_length: int = field(default=2048, metadata={"help": "tokens per example, at most"})
    max_steps: int = field(default=-1, metadata={"help": "stop after N optimizer steps (-1: the epochs)"})
    save_steps: int = field(default=25, metadata={"help": "checkpoint interval (resume)"})
    seed: int = field(default=0, metadata={"help": "seeds the data order, the LoRA init and training"})
    gradient_checkpointing: bool = field(
        default=False,
        metadata={"help": "recompute activations in backward: less GPU memory, ~1/3 more compute"},
    )
    """Recompute activations in the backward pass: less memory, ~1/3 more compute per step. Off by
    default (exact, and a 7B model keeps batch 4 x 1024 tokens in 33 GiB); turn on when memory is short."""
    padding_free: bool = field(
        default=False, metadata={"help": "concatenate each batch's examples: no pad tokens"}
    )
    """Each batch's examples concatenated into one row (position ids restart per example, so attention
    stays within each example): no pad tokens computed, the same batches and loss as padded batches."""
    varlen_attention: bool = field(
        default=False,
        metadata={"help": "padding-free batches: each example attends alone (no block mask)"},
    )
    """With ``--padding-free``: attention runs example by example (one variable-length flash kernel on
    CUDA) instead of SDPA over the whole row with a block-diagonal mask (``engine/varlen_attention.py``)."""
    liger_kernels: bool = field(
        default=False, metadata={"flag": "--liger", "help": "Liger's fused Triton kernels (CUDA)"}
    )
    """Liger's fused Triton kernels for RMSNorm, SwiGLU and RoPE (CUDA; the liger-kernel package)."""
    compile_layers: bool | None = field(
        default=None,
        metadata={
            "flag": "--compile",
            "help": "torch.compile each decoder layer (fuses elementwise work; default: on CUDA for long runs)",
        },
    )
    """``torch.compile`` each decoder layer in place (regional compilation: one layer is compiled and the
    others reuse it): the LoRA scaling and adds, dtype casts, norms, SwiGLU and RoPE become a few fused
    kernels instead of dozens of small ones. Same arithmetic up to float rounding (tested on CPU in
    fp32; in bf16 inductor rounds where eager rounds, ``engine.shapes.COMPILE_OPTIONS``); costs a compile
    at the first step and once more when a second batch length arrives (13–14 s each at 7B on an H200
    with an empty inductor cache). None: on CUDA when the run is long enough to pay that back
    (``COMPILE_BREAK_EVEN``; steady 7B steps 1.36x faster, losses within the eager path's own
    run-to-run spread: BENCHMARKS.md), never on CPU (the compile outlasts most CPU runs)."""
    merge: bool = field(default=False, metadata={"help": "also export merged weights to <output>/merged"})
    report_to: Literal["none", "tensorboard", "wandb"] = field(
        default="none",
        metadata={"help": "track the run: tensorboard writes <output>/logs; wandb reads WANDB_* env vars"},
    )
    """trl's ``report_to``: where loss and learning rate go as training runs (besides organism.json)."""
    prompt: dict = field(default_factory=dict)
    """PromptConfig fields used to render records into chat (must match the evaluation's cues)."""

    def __post_init__(self) -> None:
        """Values no training can use are refused here, before any data or model is read."""
        positive = {
            "--epochs": self.epochs,
            "--lr": self.learning_rate,
            "--lora-r": self.lora_r,
            "--lora-alpha": self.lora_alpha,
            "--batch-size": self.batch_size,
            "--grad-accum": self.grad_accum,
            "--max-length": self.max_length,
            "--save-steps": self.save_steps,
        }
        optional = {
            "--limit": self.limit,
            "--abridge-chars": self.abridge_chars,
            "--lora-top-layers": self.lora_top_layers,
        }
        for flag, value in positive.items() | {k: v for k, v in optional.items() if v is not None}.items():
            if not value > 0:
                raise SettingError(f"{flag} {value}: must be greater than 0")
        if self.varlen_attention and not self.padding_free:
            raise SettingError("--varlen-attention applies to padding-free batches: add --padding-free")
        if self.max_steps == 0 or self.max_steps < -1:
            raise SettingError(
                f"--max-steps {self.max_steps}: a positive number of steps, or -1 for the epochs"
            )

    def training_signature(self) -> dict:
        """What must match for a checkpoint to be resumed (not output or merge options)."""
        signature = asdict(self)
        for key in NOT_LEARNED:
            signature.pop(key)
        signature["kinds"] = list(self.kinds)
        return signature


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def load_training_examples(config: TrainConfig) -> tuple[list[dict], str]:
    """Chat examples and a description of their source; raises RecordError naming row and field."""
    data = training_data(config)
    return data.examples, data.source


@dataclass(frozen=True)
class TrainingData:
    examples: list[dict]
    source: str
    """The bundled seed set (with its kinds) or the data file as given."""
    kinds: list[str] | None
    """Each example's record kind; None for chat rows (they carry none)."""

    def card(self, config: TrainConfig) -> dict:
        """What the model card says of the data: kinds and counts, the data file's sha256, and for
        the bundled seed set its own data card's size, sha256 and provenance."""
        from collections import Counter

        from af_tasks.core.records import seed_card

        card: dict = {
            "examples": len(self.examples),
            "by_kind": dict(sorted(Counter(self.kinds).items())) if self.kinds is not None else None,
        }
        if config.data is None:
            seed = seed_card()
            card["seed_set"] = {key: seed[key] for key in ("records", "sha256", "provenance")}
        else:
            card["file_sha256"] = sha256_file(config.data)
        return card


def training_data(config: TrainConfig) -> TrainingData:
    """The training examples (validated), their source and kinds; raises RecordError naming row and
    field."""
    prompt_config = PromptConfig(**config.prompt)
    kinds: list[str] | None
    if config.data is None:
        records = interleave_kinds(load_seed_set(config.kinds), config.seed)
        if config.paired_refusals:
            records = with_paired_refusals(records)
        examples = [chat_example(record, prompt_config, config.abridge_chars) for record in records]
        kinds = [record.kind for record in records]
        source = f"bundled seed set ({', '.join(config.kinds)}{', paired' if config.paired_refusals else ''})"
    else:
        path = Path(config.data)
        if not path.is_file():
            raise RecordError(f"training data not found: {path}")
        with reading(path, "training data", "pass records or chat JSONL (one JSON object a line)"):
            rows = read_rows(path, RecordError)
            if not rows:
                raise RecordError(f"training data {path} is empty; pass records or chat JSONL")
            chat = is_chat_rows(rows)
        if chat:
            examples, kinds = chat_examples(rows, str(path)), None
        else:
            records = [r for r in records_from_rows(rows, str(path)) if r.kind in config.kinds]
            if config.paired_refusals:
                records = with_paired_refusals(records)
            examples = [chat_example(record, prompt_config, config.abridge_chars) for record in records]
            kinds = [record.kind for record in records]
        source = str(path)
    if config.limit is not None:
        examples = examples[: config.limit]
        kinds = kinds[: config.limit] if kinds is not None else None
    if not examples:
        raise RecordError(f"{source}: no training examples (kinds {config.kinds})")
    return TrainingData(examples, source, kinds)


def interleave_kinds(records: list[ReasoningRecord], seed: int) -> list[ReasoningRecord]:
    """Shuffle within each kind (seeded), then alternate kinds, so any prefix is balanced."""
    import random

    by_kind: dict[str, list[ReasoningRecord]] = {}
    for record in records:
        by_kind.setdefault(record.kind, []).append(record)
    rng = random.Random(seed)
    for group in by_kind.values():
        rng.shuffle(group)
    queues = [by_kind[kind] for kind in sorted(by_kind)]
    return [queue[i] for i in range(max(map(len, queues), default=0)) for queue in queues if i < len(queue)]


def is_chat_rows(rows: list[tuple[int, object]]) -> bool:
    """Chat rows carry prompt/completion message lists; record rows carry scratchpad fields."""
    return bool(rows) and isinstance(rows[0][1], dict) and bool({"prompt", "completion"} & set(rows[0][1]))


def chat_examples(rows: list[tuple[int, object]], source: str) -> list[dict]:
    examples = []
    for number, row in rows:
        for key in ("prompt", "completion"):
            messages = row.get(key) if isinstance(row, dict) else None
            if not isinstance(messages, list) or not messages:
                raise RecordError(f"{source}: row {number}: field '{key}' must be a non-empty message list")
            for message in messages:
                if not isinstance(message, dict) or not isinstance(message.get("content"), str):
                    raise RecordError(f"{source}: row {number}: field '{key}' has a message without content")
                if message.get("role") not in ("system", "user", "assistant"):
                    raise RecordError(f"{source}: row {number}: field '{key}' has a bad role")
        examples.append({"prompt": row["prompt"], "completion": row["completion"]})  # type: ignore[index]
    return examples


def code_revision() -> str:
    """The suite's version and, when it runs from a git checkout, the commit (+dirty when modified)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        revision = f"af-tasks {version('af-tasks')}"
    except PackageNotFoundError:
        revision = "af-tasks (not installed)"
    folder = Path(__file__).parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=folder, timeout=10
        )
        status = subprocess.run(
            ["git", "status", "--porcelain"], capture_output=True, text=True, cwd=folder, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return revision
    if commit.returncode != 0:
        return revision
    return f"{revision}, git {commit.stdout.strip()}{'+dirty' if status.stdout.strip() else ''}"


ORGANISM_KIND = "organism"
LEGACY_FILES = (ORGANISM_FILE, f"{CHECKPOINTS}/{RUN_CONFIG}")
"""Files that show an organism folder written before output markers existed."""


def _check_resumable(checkpoints: Path, config: TrainConfig) -> bool:
    saved = checkpoints / RUN_CONFIG
    if not any(checkpoints.glob("checkpoint-*")):
        return False
    if saved.is_file() and not same_training(_read_json(saved), config.training_signature()):
        raise SettingError(
            f"{checkpoints} holds checkpoints of a different configuration; "
            "use another --output or delete them"
        )
    return True


def _read_json(path: Path) -> dict:
    with reading(path, "training record", "it is damaged: delete it (and retrain) or use another --output"):
        value = json.loads(path.read_text())
        if not isinstance(value, dict):
            raise ValueError("not a JSON object")
        return value


def checkpoint_step(path: Path) -> int:
    return int(path.name.rsplit("-", 1)[1])


def checkpoint_is_complete(path: Path) -> bool:
    """A checkpoint the trainer finished saving: transformers writes ``trainer_state.json`` last, and
    every weights file must be whole (a kill during save leaves a truncated one or none)."""
    from safetensors import safe_open

    try:
        state = json.loads((path / "trainer_state.json").read_text())
        if int(state["global_step"]) != checkpoint_step(path):
            return False
        weights = list(path.glob("*.safetensors"))
        if not weights:
            return False
        for file in weights:
            with safe_open(str(file), framework="pt") as handle:
                for name in handle.keys():  # noqa: SIM118 - reads each tensor's extent against the file's size
                    handle.get_slice(name)
        return all((path / name).stat().st_size > 0 for name in ("optimizer.pt", "scheduler.pt"))
    except Exception:  # noqa: BLE001 - any unreadable part means the save did not finish
        return False


def last_complete_checkpoint(checkpoints: Path, log=print) -> Path | None:
    """The newest complete ``checkpoint-N``; newer ones left half-written by a kill during save are
    removed (they cannot be resumed, and the trainer would pick them), and the fallback is said."""
    import shutil

    found = sorted(
        (p for p in checkpoints.glob("checkpoint-*") if p.is_dir() and p.name.split("-")[-1].isdigit()),
        key=checkpoint_step,
        reverse=True,
    )
    for path in found:
        if checkpoint_is_complete(path):
            return path
        log(f"warning: {path} was left half-written (interrupted while saving); removing it")
        shutil.rmtree(path)
    return None


def same_training(saved: dict, current: dict) -> bool:
    """Equal signatures, ignoring the speed options (absent from checkpoints of earlier versions)."""

    def learned(signature: dict) -> dict:
        return {key: value for key, value in signature.items() if key not in SPEED_OPTIONS}

    return learned(saved) == learned(current)


def resolve_base(base_model: str) -> OrganismDir:
    """The base to train on, resolved (a local directory as an absolute path, so the adapter's
    ``adapter_config.json`` and ``organism.json`` name a base that loads from any directory). An adapter
    directory is refused: merge it first (``af train --merge``, ``engine.loading.merge_organism``)."""
    base = OrganismDir.resolve(base_model)
    if base.adapter is not None:
        raise OrganismError(
            f"{base_model}: a LoRA adapter directory, not a base model; train on its merged model "
            "(af train --merge writes <dir>/merged)"
        )
    return base


def base_dtype():
    """The dtype organisms train (and merge) in: bf16 when a GPU is visible, fp32 otherwise."""
    import torch

    return torch.bfloat16 if torch.cuda.is_available() else torch.float32


def load_base(base_model: str):
    """(model, tokenizer) of a hub id or local model directory in ``base_dtype()``, on the CPU (the
    trainer places it). Errors are ``OrganismError``s naming the model."""
    from af_tasks.engine.loading import load_organism

    base = resolve_base(base_model)
    with reading(base_model, "base model", "is it a complete model folder? prepare or download it again"):
        return load_organism(base, device="cpu", dtype=base_dtype())


def build_trainer(model, tokenizer, examples: list[dict], config: TrainConfig, callbacks=None):
    """The trl SFTTrainer with a peft LoRA adapter: loss on the completion (assistant) tokens only."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from trl import SFTConfig, SFTTrainer

    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    on_gpu = torch.cuda.is_available()
    check_liger(config.liger_kernels, on_gpu)
    sft_config = SFTConfig(
        output_dir=str(Path(config.output_dir) / CHECKPOINTS),
        num_train_epochs=config.epochs,
        max_steps=config.max_steps,
        learning_rate=config.learning_rate,
        per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum,
        max_length=None if config.padding_free else config.max_length,
        padding_free=config.padding_free,
        use_liger_kernel=config.liger_kernels,
        completion_only_loss=True,
        bf16=on_gpu,
        gradient_checkpointing=config.gradient_checkpointing,
        logging_steps=1,
        # The filter reads the loss as a Python bool each step: a sync between backward and the optimiser
        # step that left the GPU idle ~17 ms a step (7B profile) while the host clipped and stepped.
        # Without it a nan or inf loss is logged as it is.
        logging_nan_inf_filter=False,
        save_strategy="steps",
        save_steps=config.save_steps,
        save_total_limit=2,
        report_to=config.report_to,
        run_name=Path(config.output_dir).name,
        seed=config.seed,
        data_seed=config.seed,
    )
    n_layers = model.config.num_hidden_layers
    if config.lora_top_layers is not None and not 1 <= config.lora_top_layers <= n_layers:
        raise SettingError(f"lora_top_layers must lie in [1, {n_layers}] for {config.base_model}")
    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=config.target_modules,
        layers_to_transform=(
            list(range(n_layers - config.lora_top_layers, n_layers)) if config.lora_top_layers else None
        ),
        task_type="CAUSAL_LM",
    )
    if config.varlen_attention:
        from af_tasks.engine.varlen_attention import use_varlen_attention

        use_varlen_attention(model)
    trainer = SFTTrainer(
        model=model,
        args=sft_config,
        train_dataset=Dataset.from_list(examples),
        processing_class=tokenizer,
        peft_config=lora,
        callbacks=callbacks,
    )
    if config.padding_free:
        trainer.train_dataset = truncate_tokenized(trainer.train_dataset, config.max_length)
    check_examples_kept(len(examples), len(trainer.train_dataset), config)
    point_tensorboard(trainer, Path(config.output_dir) / TRAINING_LOGS)
    if sft_config.bf16:
        set_adapter_input_casts(trainer.model, enabled=False)
    if compiles_layers(config, planned_token_parameters(trainer)):
        compile_decoder_layers(trainer.model)
        if not config.padding_free:
            trainer.data_collator.pad_to_multiple_of = COMPILED_PAD_MULTIPLE
    return trainer


def compiles_layers(config: TrainConfig, token_parameters: float) -> bool:
    """Whether training runs the decoder layers compiled: ``--compile`` / ``--no-compile``, else on CUDA
    when the run's ``token_parameters`` (``planned_token_parameters``) reach ``COMPILE_BREAK_EVEN``."""
    import torch

    if config.compile_layers is not None:
        return config.compile_layers
    return torch.cuda.is_available() and token_parameters >= COMPILE_BREAK_EVEN


def planned_token_parameters(trainer) -> float:
    """The model's parameters × the tokens this process will train on: every example (as tokenised
    and cut for training) each epoch, or ``max_steps`` batches of the mean example; the world's
    processes share the examples. What a compiled layer saves grows with it; what its compile costs
    does not."""
    args = trainer.args
    lengths = [len(ids) for ids in trainer.train_dataset["input_ids"]]
    if not lengths:
        return 0.0
    if args.max_steps > 0:
        examples = args.max_steps * args.per_device_train_batch_size * args.gradient_accumulation_steps
    else:
        examples = len(lengths) * args.num_train_epochs / args.world_size
    parameters = sum(parameter.numel() for parameter in trainer.model.parameters())
    return float(parameters) * examples * sum(lengths) / len(lengths)


def runs_compiled(model) -> bool:
    """Whether ``compile_decoder_layers`` compiled the model's decoder layers (what organism.json records)."""
    return any(getattr(module, "_compiled_call_impl", None) is not None for module in model.modules())


def compile_decoder_layers(model) -> int:
    """``torch.compile`` every repeated decoder block in place; returns how many were compiled.

    Why per layer, not the trainer's ``torch_compile`` (the whole model): the blocks share one class
    and one compiled graph, so the compile costs one layer's trace instead of thirty-two, and
    ``Module.compile`` leaves parameter names as they were (no ``_orig_mod.``): adapters and
    checkpoints save and resume unchanged.

    Two graphs for a run of padded batches, not six (measured on an H200, where each compile of a 7B
    layer took 13–14 s): the embeddings' output requires grad (``enable_input_require_grads``), so
    the first layer's input matches the others' (a ``requires_grad`` mismatch is a recompile of its
    own; the extra gradient is about 1 % of a step's FLOPs); the first batch length compiles a static
    graph and the second a dynamic one, which ``COMPILED_PAD_MULTIPLE`` keeps valid (an unaligned
    length after an aligned one recompiles). Not ``dynamic=True``: its first compile took 88 s."""
    import torch

    blocks: list = []
    for module in model.modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) > 1:
            kinds = {type(child) for child in module}
            if len(kinds) == 1 and len(module) > len(blocks):
                blocks = list(module)
    if not blocks:
        raise SettingError(f"--compile: {type(model).__name__} has no repeated decoder layers to compile")
    from af_tasks.engine.shapes import COMPILE_OPTIONS

    model.enable_input_require_grads()
    for block in blocks:
        block.compile(options=COMPILE_OPTIONS)
    return len(blocks)


def set_adapter_input_casts(model, enabled: bool) -> int:
    """Whether peft casts each LoRA layer's input to the adapter weights' dtype (float32 beside a bf16
    base; peft's default is on); returns the number of layers set. The trainer turns it off.

    Why: under bf16 autocast the adapter matmuls run in bf16 anyway, so the cast only copies every
    projection's input to float32 and back — about a tenth of a 7B LoRA step's GPU time in the
    profile. Exact: a bf16 value survives the float32 round trip, forward and backward (tested)."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    layers = [module for module in model.modules() if isinstance(module, BaseTunerLayer)]
    for layer in layers:
        layer.cast_input_dtype_enabled = enabled
    return len(layers)


def truncate_tokenized(dataset, max_length: int):
    """Cut tokenised examples to ``max_length`` (keeping the start) and drop those left with no loss
    token, as trl's own truncation does.

    trl enforces ``max_length`` only for padded or packed batches; padding-free batches get it here, on
    every per-token column (``input_ids``, ``labels``, masks), so both paths train on the same tokens."""

    def cut(example: dict) -> dict:
        length = len(example["input_ids"])
        return {
            key: value[:max_length]
            for key, value in example.items()
            if isinstance(value, list) and len(value) == length
        }

    cut_dataset = dataset.map(cut)
    if "labels" not in cut_dataset.column_names:
        return cut_dataset
    return cut_dataset.filter(lambda example: any(label != -100 for label in example["labels"]))


def check_examples_kept(given: int, kept: int, config: TrainConfig) -> None:
    """trl drops an example whose prompt alone fills ``max_length`` (no answer token left to learn):
    refuse when that leaves nothing, say so when it drops some, rather than fail inside the sampler or
    train quietly on fewer examples than asked."""
    if kept == 0:
        raise SettingError(
            f"--max-length {config.max_length}: all {given} training examples are cut before their answer "
            "begins (the prompt alone fills it); raise --max-length or use --prompt-variant compact"
        )
    if kept < given:
        print(
            f"warning: --max-length {config.max_length} cuts {given - kept} of {given} training examples "
            "before their answer begins; they are left out (raise --max-length to keep them)",
            flush=True,
        )


def check_liger(wanted: bool, on_gpu: bool) -> None:
    """Liger's kernels are Triton GPU kernels: refuse clearly rather than fail inside the first step."""
    if not wanted:
        return
    if not on_gpu:
        raise SettingError("liger kernels need a CUDA GPU (train without --liger on CPU)")
    try:
        import liger_kernel  # noqa: F401
    except ImportError as error:
        raise SettingError("liger kernels need the liger-kernel package: pip install liger-kernel") from error


def check_report_to(report_to: str) -> None:
    """An integration whose package is missing is refused before anything is read or trained (trl
    would otherwise fail when the trainer is built, after the base model is loaded)."""
    from importlib.util import find_spec

    if report_to not in ("none", *REPORTERS):
        raise SettingError(f"--report-to {report_to}: use none, {', '.join(REPORTERS)}")
    packages = REPORTERS.get(report_to, ())
    if packages and not any(find_spec(package) for package in packages):
        raise SettingError(
            f"--report-to {report_to}: the {packages[0]} package is not installed; "
            f"pip install {packages[0]}, or pass --report-to none"
        )


def point_tensorboard(trainer, folder: Path) -> None:
    """TensorBoard event files go to ``folder`` (transformers 5 writes them under the checkpoints
    folder otherwise, which an exported organism leaves out); ``TENSORBOARD_LOGGING_DIR`` still wins."""
    from transformers.integrations import TensorBoardCallback

    for callback in trainer.callback_handler.callbacks:
        if isinstance(callback, TensorBoardCallback) and callback.logging_dir is None:
            callback.logging_dir = str(folder)


def train_organism(config: TrainConfig, callbacks: list | None = None, log=print) -> Path:
    """Fine-tune a LoRA organism; returns the output directory.

    ``callbacks`` are transformers ``TrainerCallback`` objects (progress, early stopping, tests).
    Under ``accelerate launch`` / ``torchrun`` every process trains its share of each batch; the
    main process alone writes the adapter, tokenizer, merged weights and ``organism.json``, and the
    others wait until it has, so nothing returns before the directory is complete.

    The output folder is this command's (a marker; a foreign folder is refused before anything is
    loaded); a folder that already holds this organism is left untouched; an interrupted run resumes
    from its last complete checkpoint and says so (``log``, and ``resumed_from_step`` in the record).
    """
    from af_tasks.core.outputs import check_output_dir, owned_output, write_text_atomic

    check_report_to(config.report_to)
    data = training_data(config)  # validate before loading anything heavy
    revision = code_revision()
    output = Path(config.output_dir)
    checkpoints = output / CHECKPOINTS
    # every process, before any of them writes, and before the base is loaded: a refusal costs nothing
    check_output_dir(output, ORGANISM_KIND, "--output", LEGACY_FILES)
    if (output / ORGANISM_FILE).is_file():
        return finished_organism(output, config, log)
    resume = _check_resumable(checkpoints, config)
    main = os.environ.get("RANK", "0") == "0"  # set by torchrun / accelerate launch; absent: one process
    claim = owned_output(output, ORGANISM_KIND, "--output", LEGACY_FILES, keep=_has_checkpoints)
    with claim if main else contextlib.nullcontext():
        model, tokenizer = load_base(config.base_model)
        check_context(model, config)
        trainer = build_trainer(model, tokenizer, data.examples, config, callbacks)
        return _train_into(output, config, trainer, resume, data, revision, log, write_text_atomic)


def check_context(model, config: TrainConfig) -> None:
    """``--max-length`` past the base's context window would train on positions it never saw."""
    from af_tasks.engine.generate import context_window

    window = context_window(model)
    if window is not None and config.max_length > window:
        raise SettingError(
            f"--max-length {config.max_length} exceeds {config.base_model}'s context window of {window} "
            f"tokens; pass --max-length {window} or less"
        )


def _has_checkpoints(output: Path) -> bool:
    return any((output / CHECKPOINTS).glob("checkpoint-*"))


def finished_organism(output: Path, config: TrainConfig, log=print) -> Path:
    """A folder that already holds this organism is left as it is (its record stays true); one that
    holds an organism trained otherwise is refused."""
    saved = _read_json(output / ORGANISM_FILE)
    if saved.get("hyperparameters") != json.loads(json.dumps(config.training_signature())):
        raise SettingError(
            f"--output {output} holds an organism of a different configuration; "
            "use another --output or delete it"
        )
    if config.merge and not saved.get("merged_dir"):
        raise SettingError(
            f"--output {output} holds this organism without merged weights; merge it with "
            "af_tasks.engine.loading.merge_organism or retrain into another --output"
        )
    log(f"{output} already holds this organism (trained {saved.get('global_steps')} steps); nothing to do")
    return output


def _train_into(output, config, trainer, resume, data, revision, log, write_text):
    import torch
    import transformers
    import trl

    from af_tasks.engine.loading import merge_organism
    from af_tasks.training.distributed import run_topology

    accelerator = trainer.accelerator
    main = trainer.is_world_process_zero()
    checkpoints = output / CHECKPOINTS
    accelerator.wait_for_everyone()
    start_from = None
    if main:
        checkpoints.mkdir(parents=True, exist_ok=True)
        (checkpoints / RUN_CONFIG).write_text(json.dumps(config.training_signature(), indent=2))
        if resume:
            start_from = last_complete_checkpoint(checkpoints, log)
    accelerator.wait_for_everyone()
    if resume and not main:
        start_from = last_complete_checkpoint(checkpoints, lambda _: None)
    resumed_step = checkpoint_step(start_from) if start_from is not None else None
    if main and resumed_step is not None:
        log(f"resuming from {start_from.name} (step {resumed_step}) in {checkpoints}")
    elif main and resume:
        log(f"no complete checkpoint in {checkpoints}; training from the start")
    started = time.monotonic()
    result = trainer.train(resume_from_checkpoint=str(start_from) if start_from is not None else None)
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]

    # Every process: under FSDP this gathers the sharded LoRA weights; only the main one writes.
    trainer.save_model(str(output))
    if main:
        (output / "training_args.bin").unlink(missing_ok=True)  # organism.json records the settings
        data_text = json.dumps(data.examples, sort_keys=True)
        organism = {
            "base_model": resolve_base(config.base_model).base,
            "base_model_requested": config.base_model,
            "base_model_hub_id": hub_id(config.base_model),
            "adapter_sha256": sha256_file(output / ADAPTER_WEIGHTS),
            "data_source": data.source,
            "data_sha256": sha256_text(data_text),
            "data_card": data.card(config),
            "examples": len(data.examples),
            "hyperparameters": config.training_signature(),
            "compiled_layers": runs_compiled(trainer.model),
            "seed": config.seed,
            "final_loss": losses[-1] if losses else None,
            "first_loss": losses[0] if losses else None,
            "train_runtime_s": round(time.monotonic() - started, 1),
            "global_steps": result.global_step,
            "resumed_from_checkpoint": resumed_step is not None,
            "resumed_from_step": resumed_step,
            "distributed": run_topology(trainer),
            "code_revision": revision,
            "versions": {
                "torch": torch.__version__,
                "transformers": transformers.__version__,
                "trl": trl.__version__,
            },
        }
        # the card replaces peft's empty template (whose base_model is a local absolute path)
        write_text(output / "README.md", model_card(organism, model_argument(output)))
        if config.merge:  # the saved adapter folded into a fresh base (also right when FSDP sharded it)
            merged = merge_organism(output, output / "merged", device="cpu", dtype=base_dtype())
            organism["merged_dir"] = str(merged)
            # the merged model carries the record too: `--model hf/<dir>/merged` logs its provenance
            write_text(merged / ORGANISM_FILE, json.dumps(organism | {"merged": True}, indent=2) + "\n")
        write_text(output / ORGANISM_FILE, json.dumps(organism, indent=2) + "\n")
    accelerator.wait_for_everyone()
    return output
