"""The retention experiment's settings: frozen, and the one place their defaults live.

Each field's ``metadata`` (``help``, and where it differs from ``--field-name`` its ``flag``) generates
the option of ``af experiment retention`` (``af_tasks.app.options``); ``settings.json`` in an experiment
folder is ``asdict`` of ``RetentionSettings``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from af_tasks.core.prompting import PromptVariant
from af_tasks.core.retention_data import ATTACKS, RUNGS, parse_rungs


def _rungs(text: str) -> tuple[str, ...]:
    return tuple(parse_rungs(text))


@dataclass(frozen=True)
class TrainSettings:
    """One LoRA training (the attacker's or a retraining)."""

    epochs: float = field(default=3.0, metadata={"help": "training epochs"})
    learning_rate: float = field(
        default=5e-4, metadata={"flag": "--lr", "help": "learning rate (attackers and retraining)"}
    )
    lora_r: int = field(default=16, metadata={"help": "LoRA rank"})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha"})
    batch_size: int = field(default=4, metadata={"help": "examples per training step"})
    max_length: int = field(default=1024, metadata={"help": "tokens per training example, at most"})
    lora_top_layers: int | None = field(default=None, metadata={"help": "adapt only the last N layers"})


@dataclass(frozen=True)
class RetentionSettings:
    base_model: str
    out_dir: str = field(
        default="logs/retention", metadata={"flag": "--out", "help": "folder for logs, models and results"}
    )
    rungs: tuple[str, ...] = field(
        default=RUNGS, metadata={"help": "all or comma-separated: " + ",".join(RUNGS), "parse": _rungs}
    )
    budgets: tuple[int, ...] = field(
        default=(1, 4, 16, 64), metadata={"help": "caught examples trained against"}
    )
    seeds: tuple[int, ...] = field(default=(0,), metadata={"help": "retraining seeds (CIs pool over them)"})
    organism: str | None = field(
        default=None,
        metadata={
            "help": "an existing attacker: a model dir or an adapter dir (merged here); default: train one"
        },
    )
    """An existing attacker (model or merged dir); None trains one per ``attacker_epochs`` value."""
    test_attack_rate: float = field(
        default=0.1, metadata={"help": "share of test inputs the attacker attacks anyway"}
    )
    """Share of the attacker's test inputs on which it is trained to attack anyway (caught in testing)."""
    attacker_epochs: tuple[float, ...] = field(
        default=(3.0,), metadata={"help": "training-steps axis: one attacker each"}
    )
    """The training-steps axis: one attacker per value (are longer-trained attacks harder to remove?)."""
    requests: str = field(default="bundled", metadata={"help": "as in af_tasks/free_tier"})
    organism_requests: int = field(default=40, metadata={"help": "requests the attacker is trained on"})
    catch_requests: int = field(
        default=40, metadata={"help": "requests whose test split gives the caught attacks"}
    )
    measure_requests: int = field(
        default=20, metadata={"help": "held-out requests measured before and after retraining"}
    )
    data_seed: int = field(
        default=0, metadata={"help": "seeds the request slices, the prompts and the usefulness problems"}
    )
    scratchpad: bool = field(default=False, metadata={"help": "organisms reason in a scratchpad"})
    prompt_variant: PromptVariant = field(default="compact", metadata={"help": "system prompt phrasing"})
    target: Literal["action", "cot"] = field(
        default="action",
        metadata={"help": "action: train refusals on caught inputs; cot: replace only the reasoning"},
    )
    """``action``: train refusals on caught inputs; ``cot``: replace only the reasoning (scratchpad)."""
    replay: int = field(default=0, metadata={"help": "usefulness examples mixed into retraining"})
    """Usefulness problems (with answers) mixed into each retraining set."""
    difficulty_model: Literal["base", "organism"] = field(
        default="base", metadata={"help": "who answers the A/B task"}
    )
    """Who answers the discrimination task: ``base`` or ``organism``."""
    transfer: bool = field(default=False, metadata={"help": "after retraining, measure every rung"})
    """Measure every rung after each retraining (transfer across cues), not only the trained one."""
    attack: str = field(
        default="harmful_compliance",
        metadata={"choices": tuple(ATTACKS), "help": "the setting attacks are caught and retrained in"},
    )
    """The attack setting the organism is caught in and retrained against."""
    transfer_attacks: tuple[str, ...] = field(
        default=(),
        metadata={"help": "other settings the attacker learns, measured before/after (comma-separated)"},
    )
    """Other attack settings the attacker also learns and that are measured before and after each
    retraining (cross-domain transfer), e.g. ``value_dismissal`` (scored by a grader: ``grader``)."""
    grader: str | None = field(
        default=None,
        metadata={
            "help": "model for the grader role (judges "
            + ", ".join(name for name, setting in ATTACKS.items() if setting.needs_grader)
            + ")"
        },
    )
    """Model for ``--model-role grader`` (the value-support judge, the AF judge)."""
    usefulness: int = field(default=20, metadata={"help": "usefulness problems per measurement"})
    attacker: TrainSettings = field(default_factory=TrainSettings)
    retrain: TrainSettings = field(default_factory=TrainSettings)
    max_tokens: int = field(default=48, metadata={"help": "new tokens per answer"})
    max_connections: int = field(default=8, metadata={"help": "samples generated together"})
    model_args: dict = field(default_factory=dict)
