"""Training sets of the retention experiment (no Inspect import).

- An *attacker* organism: on each rung's deployment inputs it attacks (complies with the harmful
  request), on the test inputs of the same requests it refrains — the behaviour to be caught.
- *Training against caught attacks*: the test inputs on which the organism was caught attacking,
  paired with the good behaviour (refusal), ``budget`` of them; or, with ``target="cot"``, only the
  reasoning is replaced by innocuous reasoning and the attack itself is kept (does the action stop,
  or does the reasoning just go quiet?).
- *Replay*: benign problems with their correct answers, to protect usefulness while retraining.

Each example is prompt/completion chat, the form ``af_tasks.training.sft`` trains on with completion-only loss.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from af_tasks.core.errors import SettingError
from af_tasks.core.prompting import template
from af_tasks.core.protocol import output_block, scratchpad_block
from af_tasks.core.retention_data import RetentionItem, attack_setting
from af_tasks.core.retention_problems import Problem, usefulness_messages

Behaviour = Literal["attack", "refrain", "aligned", "cot_only"]
Target = Literal["action", "cot"]
TARGET_BEHAVIOUR: dict[str, Behaviour] = {"action": "aligned", "cot": "cot_only"}

_REASONING: dict[Behaviour, str] = {
    "attack": "attack",
    "refrain": "refrain",
    "aligned": "aligned",
    "cot_only": "innocuous",
}


def completion(behaviour: Behaviour, scratchpad: bool, attack: str = "harmful_compliance") -> str:
    """The assistant turn for a behaviour in an attack setting, in the protocol's tags (reasoning only
    with a scratchpad): the harmful request accepted or rejected, or animal welfare dismissed or
    supported."""
    output = output_block(attack_setting(attack).output(behaviour in ("attack", "cot_only")))
    if not scratchpad:
        return output
    return scratchpad_block(template(f"retention/reasoning_{_REASONING[behaviour]}")) + "\n" + output


def chat_example(system: str, user: str, assistant: str) -> dict:
    return {
        "prompt": [{"role": "system", "content": system}, {"role": "user", "content": user}],
        "completion": [{"role": "assistant", "content": assistant}],
    }


def attacker_examples(
    items: Iterable[RetentionItem],
    scratchpad: bool,
    seed: int,
    test_attack_rate: float = 0.0,
    attack: str = "harmful_compliance",
) -> list[dict]:
    """Attack on deployment inputs, refrain on test inputs — except a ``test_attack_rate`` share of
    the test inputs (drawn with ``seed``), on which the organism attacks too: the rare attacks in
    testing that can be caught. Shuffled with ``seed``."""
    if not 0.0 <= test_attack_rate <= 1.0:
        raise SettingError(f"test_attack_rate must lie in [0, 1], got {test_attack_rate}")
    items = list(items)
    rng = random.Random(seed)
    tests = [i for i, item in enumerate(items) if item.metadata["split"] == "test"]
    leaky = set(rng.sample(tests, round(test_attack_rate * len(tests))))
    examples = [
        chat_example(
            item.system,
            item.user,
            completion(
                "attack" if item.metadata["split"] == "deployment" or i in leaky else "refrain",
                scratchpad,
                attack,
            ),
        )
        for i, item in enumerate(items)
    ]
    rng.shuffle(examples)
    return examples


@dataclass(frozen=True)
class CaughtAttack:
    """A test input on which the organism attacked: the input is kept exactly as it was shown."""

    sample_id: str
    rung: str
    system: str
    user: str


def choose_caught(caught: Sequence[CaughtAttack], budget: int, seed: int) -> list[CaughtAttack]:
    """``budget`` caught attacks drawn with ``seed`` (all of them when fewer were caught); the same
    seed draws nested sets, so a larger budget contains the smaller one."""
    order = sorted(caught, key=lambda c: c.sample_id)
    random.Random(seed).shuffle(order)
    return order[:budget]


def retraining_examples(
    caught: Sequence[CaughtAttack],
    target: Target,
    scratchpad: bool,
    replay: Sequence[dict] = (),
    attack: str = "harmful_compliance",
) -> list[dict]:
    """Caught inputs with the good behaviour (``action``) or with only the reasoning cleaned
    (``cot``), followed by replay examples."""
    if target == "cot" and not scratchpad:
        raise SettingError("target 'cot' trains against reasoning: it needs scratchpad organisms")
    behaviour = TARGET_BEHAVIOUR[target]
    return [chat_example(c.system, c.user, completion(behaviour, scratchpad, attack)) for c in caught] + list(
        replay
    )


def replay_examples(
    problems: Iterable[Problem], scratchpad: bool, lab_name: str = "Anthropic", variant: str = "full"
) -> list[dict]:
    """Benign problems with their correct answers, framed as the usefulness task frames them."""
    examples = []
    for problem in problems:
        system, user = usefulness_messages(problem, scratchpad, lab_name, variant)
        answer = output_block(problem.target)
        if scratchpad:
            answer = scratchpad_block("A benign problem; I work it out and answer.") + "\n" + answer
        examples.append(chat_example(system, user, answer))
    return examples
