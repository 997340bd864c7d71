"""synthetic_reasoning: generate labelled AF / aligned reasoning with a generator model (e.g. Claude).

Every generation run is an Inspect log; ``af data export LOG`` turns its judged samples into
training files and a data card. Run it as
``inspect eval af_tasks/synthetic_reasoning --model anthropic/<model> --model-role grader=anthropic/<model>``.
"""

from __future__ import annotations

from inspect_ai import Task, task
from inspect_ai.dataset import MemoryDataset, Sample
from inspect_ai.model import GenerateConfig
from inspect_ai.solver import generate

from af_tasks.boundary import boundary
from af_tasks.core.synthetic import generation_cells
from af_tasks.core.task_args import fraction, whole
from af_tasks.scorers.quality import synthetic_quality

ALL_KINDS = "af,unmonitored_refusal,hard_negative"


@task
@boundary
def synthetic_reasoning(
    kinds: str = ALL_KINDS,
    per_cell: int = 1,
    seed: int = 0,
    temperature: float = 1.0,
    max_tokens: int = 2048,
) -> Task:
    """Briefs crossing kind × style × harm category × context signal, shuffled with ``seed``.

    Args:
      kinds: comma-separated subset of af, unmonitored_refusal, hard_negative.
      per_cell: samples per brief (different sample ids, independent generations).
      seed: shuffle seed, so that --limit takes a mixed subset.
      temperature: generator temperature.
      max_tokens: generator token limit.
    """
    per_cell, seed = whole("per_cell", per_cell, 1), whole("seed", seed, 0)
    temperature, max_tokens = (
        fraction("temperature", temperature, 0.0, 2.0),
        whole("max_tokens", max_tokens, 1),
    )
    cells = generation_cells(tuple(k.strip() for k in str(kinds or "").split(",")), per_cell, seed)
    samples = [Sample(id=cell.sample_id, input=cell.prompt(), metadata=cell.metadata()) for cell in cells]
    return Task(
        dataset=MemoryDataset(samples, name="synthetic_reasoning"),
        solver=generate(),
        scorer=synthetic_quality(),
        config=GenerateConfig(temperature=temperature, max_tokens=max_tokens),
    )
