"""The suite's one Inspect entry point: every task, solver, scorer, metric and the ``organism/`` model
provider, registered as ``af_tasks/<name>``.

Inspect imports this at the start of every eval, so it stays light: nothing here imports torch,
transformers or sae-lens at module level (they load when a model or SAE is actually used).
"""

from af_tasks.af_calibration import af_calibration
from af_tasks.contractor import contractor
from af_tasks.free_tier import free_tier
from af_tasks.retention import deployment_discrimination, retention_eval, retention_usefulness
from af_tasks.rlhf_cues import rlhf_cues
from af_tasks.scorers.af_judge import af_reasoning
from af_tasks.scorers.af_markers import af_style_markers
from af_tasks.scorers.compliance import compliance
from af_tasks.scorers.discrimination import discrimination, discrimination_accuracy
from af_tasks.scorers.graded import partial_compliance, strongreject, value_support
from af_tasks.scorers.metrics import (
    calibration,
    compliance_gap,
    compliance_rates,
    maybe_band_rates,
    rates_by_condition,
)
from af_tasks.scorers.quality import synthetic_quality
from af_tasks.scorers.sae_scores import probe, sae_features
from af_tasks.scorers.usefulness import usefulness, usefulness_accuracy
from af_tasks.solvers.organism_model import organism
from af_tasks.solvers.replay import replay_text
from af_tasks.solvers.scratchpad import scratchpad_protocol
from af_tasks.solvers.system_prompt import system_prompt
from af_tasks.synthetic_reasoning import synthetic_reasoning
from af_tasks.value_conflict import value_conflict

__all__ = [
    # tasks
    "af_calibration",
    "contractor",
    "deployment_discrimination",
    "free_tier",
    "retention_eval",
    "retention_usefulness",
    "rlhf_cues",
    "synthetic_reasoning",
    "value_conflict",
    # solvers and the model provider
    "organism",
    "replay_text",
    "scratchpad_protocol",
    "system_prompt",
    # scorers and metrics
    "af_reasoning",
    "af_style_markers",
    "calibration",
    "compliance",
    "compliance_gap",
    "compliance_rates",
    "discrimination",
    "discrimination_accuracy",
    "maybe_band_rates",
    "partial_compliance",
    "probe",
    "rates_by_condition",
    "sae_features",
    "strongreject",
    "synthetic_quality",
    "usefulness",
    "usefulness_accuracy",
    "value_support",
]
