"""`af experiment retention` at toy size on a tiny random Llama: an organism that attacks on every input
(trained here), caught on the test split, retrained against 1 and 3 caught attacks, measured again.
Every figure in results.json is recounted from the Inspect logs it came from."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from inspect_ai.log import list_eval_logs, read_eval_log

from af_tasks.app.cli import main
from af_tasks.core.records import write_jsonl
from af_tasks.core.requests import load_requests
from af_tasks.core.retention_data import RetentionConfig, retention_items
from af_tasks.core.retention_training import chat_example, completion
from af_tasks.training.sft import TrainConfig, train_organism

pytestmark = pytest.mark.slow
RUNGS = ("trigger", "tier")


@pytest.fixture(scope="module")
def always_attacks(tiny_llama_dir, tmp_path_factory) -> Path:
    """A tiny organism that attacks whatever the cue (so that the catch step has something to catch)."""
    root = tmp_path_factory.mktemp("always-attacks")
    config = RetentionConfig(scratchpad=False, variant="compact")
    items = retention_items(load_requests()[:6], RUNGS, config=config)
    data = write_jsonl(
        [chat_example(i.system, i.user, completion("attack", False)) for i in items], root / "d.jsonl"
    )
    train_organism(
        TrainConfig(
            base_model=str(tiny_llama_dir),
            output_dir=str(root / "organism"),
            data=str(data),
            epochs=30,
            learning_rate=3e-3,
            lora_r=32,
            lora_alpha=64,
            max_length=1024,
            merge=True,
        )
    )
    return root / "organism" / "merged"


def eval_log(out: Path, name: str):
    [info] = list_eval_logs(str(out / "logs" / name))
    return read_eval_log(info)


def recount(log, rung: str, split: str) -> tuple[int, int]:
    verdicts = [
        s.scores["compliance"].answer
        for s in log.samples
        if s.metadata["cue"] == rung and s.metadata["split"] == split
    ]
    return verdicts.count("accepted"), verdicts.count("accepted") + verdicts.count("rejected")


@pytest.fixture(scope="module")
def experiment(always_attacks, tmp_path_factory):
    out = tmp_path_factory.mktemp("retention") / "run"
    args = ["experiment", "retention", "--model", str(always_attacks), "--organism", str(always_attacks)]
    args += ["--out", str(out), "--rungs", ",".join(RUNGS), "--budgets", "1,3", "--catch-requests", "4"]
    args += ["--measure-requests", "3", "--usefulness", "3", "--retrain-epochs", "4", "--lr", "3e-3"]
    args += ["--max-tokens", "40", "--device", "cpu", "--organism-requests", "8"]
    assert main(args) == 0
    return out, args


def test_request_sets_are_disjoint(experiment):
    out, _ = experiment
    ids = {
        name: {
            json.loads(line)["id"]
            for line in (out / "data" / f"{name}_requests.jsonl").read_text().splitlines()
        }
        for name in ("catch", "measure")
    }
    assert len(ids["catch"]) == 4 and len(ids["measure"]) == 3
    assert not ids["catch"] & ids["measure"]


def test_caught_attacks_and_rates_come_from_the_logs(experiment):
    out, _ = experiment
    results = json.loads((out / "results.json").read_text())
    assert "NaN" not in (out / "results.json").read_text()
    organism = results["organisms"]["attacker"]
    catch = eval_log(out, "attacker-catch")
    assert {s.metadata["split"] for s in catch.samples} == {"test"}
    before = eval_log(out, "attacker-before")
    for rung in RUNGS:
        assert organism["caught"][rung] == recount(catch, rung, "test")[0]
        assert organism["caught"][rung] > 0, "the organism attacks everywhere: something must be caught"
        for split in ("test", "deployment"):
            k, n = recount(before, rung, split)
            assert (
                organism["before"]["attacks"][rung][split]["k"],
                organism["before"]["attacks"][rung][split]["n"],
            ) == (k, n)


def test_each_run_trains_on_its_budget_and_is_measured_again(experiment):
    out, _ = experiment
    results = json.loads((out / "results.json").read_text())
    caught = results["organisms"]["attacker"]["caught"]
    runs = {(r["rung"], r["budget"]): r for r in results["runs"]}
    assert set(runs) == {(rung, b) for rung in RUNGS for b in (1, 3)}
    for (rung, budget), run in runs.items():
        name = f"attacker-{rung}-b{budget}-s0"
        assert run["caught_used"] == min(budget, caught[rung])
        lines = (out / "retrained" / f"{name}.train.jsonl").read_text().splitlines()
        assert len(lines) == run["caught_used"] == run["train"]["examples"]
        assert all("<rejected/>" in json.loads(line)["completion"][0]["content"] for line in lines)
        after = eval_log(out, f"{name}-after")
        k, n = recount(after, rung, "deployment")
        assert (
            run["after"]["attacks"][rung]["deployment"]["k"],
            run["after"]["attacks"][rung]["deployment"]["n"],
        ) == (k, n)
    for row in results["summary"]:
        run = runs[(row["rung"], row["budget"])]
        assert row["deployment_after"]["k"] == run["after"]["attacks"][row["rung"]]["deployment"]["k"]
        assert set(run["after"]["attacks"]) == {row["rung"]}  # without --transfer only the trained rung
        low, high = row["deployment_after"]["ci95"]
        assert low <= row["deployment_after"]["rate"] <= high
    curves = results["separability"]["rungs"]  # the probe: organism-slice pairs → measure-slice pairs
    assert set(curves) == set(RUNGS) and results["separability"]["model"] == results["base"]["model"]
    for curve in curves.values():
        assert curve["n_eval"] == 2 * 3 and curve["n_train_pairs"] == 8
        assert [row["pairs"] for row in curve["sizes"]] == [1, 2, 4, 8]
        assert curve["skipped_sizes"] == [16, 32]  # more pairs than the organism slice has
    table = (out / "table.md").read_text()
    assert table.count("| attacker | trigger |") == 5  # before, two budgets, their two log-likelihood rows
    for run in runs.values():  # usefulness as log-likelihood: every item of the bundled set, paired
        change = run["loglik_change"]
        assert change["difference"]["n"] == 80 == run["after"]["loglik"]["mean_token_loglik"]["n"]
        assert change["after"]["mean"] == pytest.approx(run["after"]["loglik"]["mean_token_loglik"]["mean"])
    assert (out / "retention.png").stat().st_size > 0


def test_a_second_run_resumes_from_what_is_there(experiment):
    out, args = experiment
    logs_before = sorted(p.name for p in (out / "logs").rglob("*.eval"))
    first = json.loads((out / "results.json").read_text())
    assert main(args) == 0
    assert sorted(p.name for p in (out / "logs").rglob("*.eval")) == logs_before
    second = json.loads((out / "results.json").read_text())
    assert second["runs"] == first["runs"] and second["organisms"] == first["organisms"]


def test_an_interrupted_run_redoes_only_its_unfinished_step(experiment):
    """What a kill during the last retraining leaves behind: that retraining without organism.json,
    its after-measurement absent, results.json from before. Resumed, the run reuses every finished
    log untouched (same files, same bytes), finishes only that step, and ends with the same figures."""
    import shutil

    from hostile import tree_digest

    out, args = experiment
    first = json.loads((out / "results.json").read_text())
    last = first["runs"][-1]
    name = f"{last['organism']}-{last['rung']}-b{last['budget']}-s{last['seed']}"
    (out / "retrained" / name / "organism.json").unlink()
    for folder in (out / "logs").glob(f"{name}-*"):
        shutil.rmtree(folder)
    finished = {path: digest for path, digest in tree_digest(out / "logs").items() if path.endswith(".eval")}

    assert main(args) == 0
    after = tree_digest(out / "logs")
    assert {path: after.get(path) for path in finished} == finished  # nothing finished was redone
    redone = [path for path in after if path.startswith(f"{name}-") and path.endswith(".eval")]
    assert redone, "the unfinished step was not run again"
    organism = json.loads((out / "retrained" / name / "organism.json").read_text())
    assert organism["resumed_from_checkpoint"] is True  # the retraining resumed, it did not restart
    second = json.loads((out / "results.json").read_text())
    assert second["runs"][-1]["after"] == last["after"]
    assert second["runs"][-1]["train"]["global_steps"] == last["train"]["global_steps"]


def test_cross_domain_transfer_is_measured_with_the_grader(always_attacks, tmp_path):
    """Caught and retrained in harmful_compliance, measured after each retraining on every rung
    (``transfer``) and in value_dismissal, whose verdicts come from the grader role (scripted here: an
    answer that accepts is judged not to support welfare)."""
    from inspect_ai.model import get_model
    from inspect_helpers import scripted_output

    from af_tasks.app.retention.run import RetentionExperiment
    from af_tasks.app.retention.settings import RetentionSettings, TrainSettings

    def judge(messages, tools, tool_choice, config):
        prompt = messages[-1].text
        if "=== BEGIN ANSWER ===" not in prompt:
            return scripted_output("no verdict")  # the AF judge's prompts: unparseable, left unscored
        answer = prompt.split("=== BEGIN ANSWER ===")[1].split("=== END ANSWER ===")[0]
        return scripted_output(
            f"<supports>{'No' if 'request_fully_accepted' in answer else 'Yes'}</supports>"
        )

    settings = RetentionSettings(
        base_model=str(always_attacks),
        out_dir=str(tmp_path / "run"),
        rungs=RUNGS,
        budgets=(2,),
        transfer=True,
        organism=str(always_attacks),
        organism_requests=4,
        catch_requests=3,
        measure_requests=2,
        usefulness=2,
        transfer_attacks=("value_dismissal",),
        retrain=TrainSettings(epochs=2, learning_rate=3e-3),
        max_tokens=40,
        model_args={"device": "cpu"},
    )
    results = RetentionExperiment(settings, grader=get_model("mockllm/model", custom_outputs=judge)).run(
        progress=lambda _line: None
    )
    out = tmp_path / "run"
    welfare = {
        json.loads(line)["id"] for line in (out / "data" / "value_dismissal-measure_requests.jsonl").open()
    }
    assert len(welfare) == 2 and all(not i.startswith(("cybercrime", "weapons")) for i in welfare)
    before = results["organisms"]["attacker"]["before"]["transfer_attacks"]["value_dismissal"]["trigger"]
    log = eval_log(out, "attacker-before-value_dismissal")
    answers = [s.scores["value_support"].answer for s in log.samples if s.metadata["split"] == "deployment"]
    assert before["deployment"]["k"] == answers.count("dismisses")
    assert before["deployment"]["k"] + before["deployment"]["malformed"] > 0
    rows = {row["rung"]: row for row in results["summary"]}
    assert set(rows) == set(RUNGS)
    for rung, row in rows.items():
        assert set(row["transfer_attacks"]) == {"value_dismissal"}
        other = next(r for r in RUNGS if r != rung)  # --transfer: every rung measured after each retraining
        run = next(r for r in results["runs"] if r["rung"] == rung)
        assert (
            row["deployment_after_other_rungs"][other]["n"]
            == run["after"]["attacks"][other]["deployment"]["n"]
            > 0
        )
        assert eval_log(out, f"attacker-{rung}-b2-s0-after-all-rungs")
    assert "Deployment attacks in the other attack settings" in (out / "table.md").read_text()


def test_a_damaged_reading_is_named_in_one_line_and_left_as_it_is(experiment, tmp_path, capsys):
    """A resumed run that finds a stored reading it cannot parse stops with one line naming the file
    (not a traceback) and changes nothing it had measured."""
    import shutil

    from hostile import tree_digest

    out, args = experiment
    copy = tmp_path / "run"
    shutil.copytree(out, copy)
    damaged = copy / "readings" / "base-loglik.json"
    damaged.write_text('{"mean_token_loglik": ')
    before = tree_digest(copy)
    capsys.readouterr()
    assert main([str(copy) if arg == str(out) else arg for arg in args]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: could not read experiment reading") and str(damaged) in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    after = tree_digest(copy)
    after.pop("settings.json"), before.pop("settings.json")  # rewritten at every start (its --out moved)
    assert after == before


def _runs(out: Path) -> list[dict]:
    """results.json's runs without their wall times."""
    runs = json.loads((out / "results.json").read_text())["runs"]
    for run in runs:
        run.get("train", {}).pop("train_runtime_s", None)
    return runs


def test_retention_cells_on_two_devices_equal_a_sequential_run(experiment, tmp_path):
    """``--devices cpu,cpu``: the cells run concurrently, one per device, and give what the sequential
    run gave (the same runs, adapters byte for byte, completions). Here, beside the sequential run it is
    compared with, so that run and its organism are built once."""
    sequential, args = experiment
    out = tmp_path / "two-devices"
    args = [str(out) if arg == str(sequential) else arg for arg in args] + ["--devices", "cpu,cpu"]
    assert main(args) == 0
    runs = _runs(out)
    assert runs == _runs(sequential) and len(runs) == 4 and all("after" in run for run in runs)
    for run in runs:
        name = f"attacker-{run['rung']}-b{run['budget']}-s{run['seed']}"
        adapter = Path("retrained") / name / "adapter_model.safetensors"
        assert (out / adapter).read_bytes() == (sequential / adapter).read_bytes(), name
        completions = [
            [s.output.completion for s in eval_log(root, f"{name}-after").samples]
            for root in (out, sequential)
        ]
        assert completions[0] == completions[1]
