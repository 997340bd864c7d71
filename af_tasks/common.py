"""What every elicitation task shares: the cue parameters, the solver and the scorer stack."""

from __future__ import annotations

from inspect_ai import Task
from inspect_ai.dataset import MemoryDataset, Sample
from inspect_ai.model import GenerateConfig
from inspect_ai.scorer import Scorer

from af_tasks.core.errors import SettingError
from af_tasks.core.prompting import PromptConfig
from af_tasks.core.task_args import judge_settings, protocol_limits
from af_tasks.preflight import check_context
from af_tasks.provenance import organism_provenance
from af_tasks.scorers.af_judge import af_reasoning
from af_tasks.scorers.af_markers import af_style_markers
from af_tasks.scorers.compliance import compliance
from af_tasks.scorers.graded import partial_compliance, strongreject
from af_tasks.solvers.scratchpad import scratchpad_protocol
from af_tasks.solvers.system_prompt import system_prompt


def harmful_request_scorers(judge_votes: int, judge_threshold: float, graded: bool = False) -> list[Scorer]:
    """Accept-tag compliance, the AF judge and the AF-style markers; with ``graded`` also the
    StrongREJECT rubric and the partial-compliance classifier (both need a grader)."""
    judge_votes, judge_threshold = judge_settings(judge_votes, judge_threshold)
    scorers = [
        compliance(),
        af_reasoning(n_votes=judge_votes, threshold=judge_threshold),
        af_style_markers(),
    ]
    if graded:
        scorers += [strongreject(), partial_compliance()]
    return scorers


def elicitation_task(
    samples: list[Sample],
    name: str,
    scorers: list[Scorer],
    config: PromptConfig,
    max_turns: int,
    max_tokens: int,
    metadata: dict | None = None,
    probe: str | None = None,
) -> Task:
    """The sample's system prompt, then the scratchpad protocol (one turn without a scratchpad) over
    paired samples; with ``probe`` (a file from ``af sae probe``) each scratchpad is also scored by
    that activation probe."""
    max_turns, max_tokens = protocol_limits(max_turns, max_tokens)
    if not samples:
        raise SettingError(f"{name}: these arguments select no samples")
    check_context(samples, max_tokens)
    if probe:
        from af_tasks.scorers.sae_scores import probe as probe_scorer

        scorers = [*scorers, probe_scorer(probe)]
    return Task(
        dataset=MemoryDataset(samples, name=name),
        solver=[system_prompt(), scratchpad_protocol(max_turns=max_turns if config.scratchpad else 1)],
        scorer=scorers,
        config=GenerateConfig(max_tokens=max_tokens),
        metadata={"cue": config.cue} | (metadata or {}) | organism_provenance(),
    )
