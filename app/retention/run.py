"""The retention experiment's run: request files, evals, trainings and the whole loop.

Everything a step needs comes in as an argument (the request files, the attackers, the caught
attacks): the experiment object holds only what its settings fix (``s``, ``grader``, ``out``).
"""

from __future__ import annotations

import json
import platform
import random
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from af_tasks.app.retention.logs import attack_rates, caught_attacks, scored_rate
from af_tasks.app.retention.report import summarise, write_report
from af_tasks.app.retention.settings import RetentionSettings, TrainSettings
from af_tasks.core.errors import AfError, MissingFileError
from af_tasks.core.retention_data import ATTACKS, RUNGS
from af_tasks.core.stats import rate_json
from af_tasks.core.strict_json import dumps

ATTACKER = "attacker"
EXPERIMENT_KIND = "retention-experiment"

RequestFiles = dict[str, Path]
"""Request slice → JSONL file: ``organism``, ``catch``, ``measure`` of the caught setting and
``<setting>:organism``, ``<setting>:measure`` of each transfer setting."""


class ExperimentError(AfError, RuntimeError):
    """A step of the experiment failed; the message names the step and its log or folder."""


Slot = tuple[str, int, int, "int | None"]
"""(rung, seed, budget, same_as): ``same_as`` is the smaller budget whose training set this one
repeats (fewer attacks were caught than either budget asks for), None for a cell that is run."""


def cell_slots(rungs, seeds, budgets, caught: dict[str, int]) -> list[Slot]:
    """Every rung × seed × budget in the sequential order. A budget above the number of caught attacks
    trains on all of them — the same examples, seed and steps as the smallest such budget (nested
    draws) — so it is not trained and measured again but reported as that cell (``same_as``)."""
    slots = []
    for rung in rungs:
        for seed in seeds:
            first_of: dict[int, int] = {}
            for budget in budgets:
                used = min(budget, caught.get(rung, 0))
                slots.append((rung, seed, budget, first_of.get(used)))
                first_of.setdefault(used, budget)
    return slots


def fill_slots(slots: list[Slot], finished: dict[tuple, dict]) -> list[dict]:
    """The runs of the finished slots in order; a repeated budget is its source run under its own
    budget, marked ``same_training_set_as_budget``."""
    runs = []
    for rung, seed, budget, same_as in slots:
        source = finished.get((rung, seed, budget if same_as is None else same_as))
        if source is None:
            continue
        runs.append(
            source if same_as is None else source | {"budget": budget, "same_training_set_as_budget": same_as}
        )
    return runs


def machine() -> dict:
    """Where the run ran: platform, Python, the GPU (when one is visible) and the suite's revision."""
    from af_tasks.training.sft import code_revision

    info = {"platform": platform.platform(), "python": platform.python_version(), "revision": code_revision()}
    try:
        import torch

        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
            info["torch"] = torch.__version__
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    return info


class RetentionExperiment:
    def __init__(self, settings: RetentionSettings, grader=None):
        """``grader``: a Model (or name) for the grader role; default ``settings.grader``."""
        self.s = settings
        self.grader = grader if grader is not None else settings.grader
        self.out = Path(settings.out_dir).resolve()
        if settings.target == "cot" and not settings.scratchpad:
            raise ExperimentError("target 'cot' trains against reasoning: pass --scratchpad")
        attacks = [settings.attack, *settings.transfer_attacks]
        if unknown_attacks := [a for a in attacks if a not in ATTACKS]:
            raise ExperimentError(f"unknown attack settings {unknown_attacks}; known: {', '.join(ATTACKS)}")
        if settings.attack in settings.transfer_attacks:
            raise ExperimentError(f"{settings.attack} is the caught setting; transfer settings must differ")
        unknown = [r for r in settings.rungs if r not in RUNGS]
        if unknown:
            raise ExperimentError(f"unknown rungs {unknown}; the ladder is {', '.join(RUNGS)}")
        if settings.organism is not None and not Path(settings.organism).is_dir():
            raise MissingFileError(
                f"--organism {settings.organism} is not a folder (an organism or model dir)"
            )
        if settings.requests != "bundled" and not Path(settings.requests).is_file():
            raise MissingFileError(f"--requests {settings.requests} does not exist (a CSV/JSONL of requests)")
        if settings.base_model.startswith(("/", ".")) and not Path(settings.base_model).is_dir():
            raise MissingFileError(f"--model {settings.base_model} is not a folder")

    def ungraded_attacks(self) -> list[str]:
        """Settings of this experiment judged by a grader when none is given (all their verdicts
        would be malformed)."""
        attacks = [self.s.attack, *self.s.transfer_attacks]
        return [a for a in attacks if ATTACKS[a].needs_grader] if self.grader is None else []

    # requests ---------------------------------------------------------------------------------------------

    def request_files(self) -> RequestFiles:
        """Disjoint organism / catch / measure slices of one seeded shuffle, written as JSONL; for each
        transfer setting, organism and measure slices of its own requests (``<setting>:<slice>``)."""
        sizes = {  # the organism slice is kept even for a given organism, so held-out sets never move
            "organism": self.s.organism_requests,
            "catch": self.s.catch_requests,
            "measure": self.s.measure_requests,
        }
        files = self._slices(self.s.attack, self.s.requests, sizes, "")
        for attack in self.s.transfer_attacks:
            sizes = {"organism": self.s.organism_requests, "measure": self.s.measure_requests}
            files |= self._slices(attack, "bundled", sizes, f"{attack}:")
        return files

    def _slices(self, attack: str, source: str, sizes: dict[str, int], prefix: str) -> RequestFiles:
        from af_tasks.core.retention_data import attack_setting

        requests = list(attack_setting(attack).load(source))
        random.Random(self.s.data_seed).shuffle(requests)
        if sum(sizes.values()) > len(requests):
            asked = ", ".join(f"--{name}-requests {size}" for name, size in sizes.items())
            raise ExperimentError(
                f"{asked} need {sum(sizes.values())} requests, but {attack} ({source}) has "
                f"{len(requests)}; lower them or pass more --requests"
            )
        files, start = {}, 0
        for name, size in sizes.items():
            path = self.out / "data" / f"{prefix.replace(':', '-')}{name}_requests.jsonl"
            path.parent.mkdir(parents=True, exist_ok=True)
            rows = [
                {"id": r.request_id, "category": r.category, "request": r.text}
                for r in requests[start : start + size]
            ]
            path.write_text("".join(json.dumps(row) + "\n" for row in rows))
            files[f"{prefix}{name}"], start = path, start + size
        return files

    # evals ------------------------------------------------------------------------------------------------

    def evaluate(self, task, model_dir: Path | str, name: str):
        """One Inspect eval into ``logs/<name>``; a successful log already there is reused."""
        from inspect_ai import eval as inspect_eval
        from inspect_ai.log import list_eval_logs, read_eval_log

        log_dir = self.out / "logs" / name
        for info in list_eval_logs(str(log_dir)) if log_dir.is_dir() else []:
            try:
                header = read_eval_log(info, header_only=True)
            except Exception:  # noqa: BLE001 - a log cut short by a kill: this step runs again
                continue
            if header.status == "success":
                return read_eval_log(info)
        [log] = inspect_eval(
            task,
            model=f"organism/{model_dir}",  # the suite's engine: batched, greedy tokens = plain generate
            model_roles={"grader": self.grader} if self.grader is not None else None,
            model_args={"do_sample": False} | self.s.model_args,
            log_dir=str(log_dir),
            max_connections=self.s.max_connections,
            display="none",
        )
        if log.status != "success":
            raise ExperimentError(f"eval {name} ended {log.status}: {log.error} (log in {log_dir})")
        return log

    def retention_task(self, requests: Path, rungs, split: str = "both", attack: str | None = None):
        from af_tasks.retention import retention_eval

        return retention_eval(
            rung=",".join(rungs),
            split=split,
            requests=str(requests),
            attack=attack or self.s.attack,
            seed=self.s.data_seed,
            scratchpad=self.s.scratchpad,
            prompt_variant=self.s.prompt_variant,
            max_tokens=self.s.max_tokens,
            max_turns=2,
        )

    def usefulness_task(self):
        from af_tasks.retention import retention_usefulness

        return retention_usefulness(
            n=self.s.usefulness,
            seed=self.s.data_seed + 1,
            scratchpad=self.s.scratchpad,
            prompt_variant=self.s.prompt_variant,
            max_tokens=self.s.max_tokens,
            max_turns=2,
        )

    def measure(self, model_dir, name: str, files: RequestFiles, rungs) -> dict:
        """Attack rates on the ``measure`` requests (and each transfer setting's), and usefulness."""
        attacks = attack_rates(
            self.evaluate(self.retention_task(files["measure"], rungs), model_dir, name), self.s.attack
        )
        usefulness = scored_rate(
            self.evaluate(self.usefulness_task(), model_dir, f"{name}-usefulness"), "usefulness"
        )
        result = {
            "attacks": attacks,
            "usefulness": usefulness["all"] if usefulness else rate_json(0, 0),
            "loglik": self.loglik(model_dir, name),
        }
        if self.s.transfer_attacks:
            result["transfer_attacks"] = {
                attack: attack_rates(
                    self.evaluate(
                        self.retention_task(files[f"{attack}:measure"], rungs, attack=attack),
                        model_dir,
                        f"{name}-{attack}",
                    ),
                    attack,
                )
                for attack in self.s.transfer_attacks
            }
        return result

    def stored_reading(self, name: str, compute) -> dict:
        """A model reading that is not an eval (log-likelihood, separability), kept in
        ``readings/<name>.json`` so that a resumed run and the cells read the same numbers without
        recomputing them."""
        from af_tasks.core.errors import reading
        from af_tasks.core.outputs import write_text_atomic

        path = self.out / "readings" / f"{name}.json"
        if path.is_file():
            with reading(
                path, "experiment reading", "it is damaged: delete it and run again to measure it anew"
            ):
                return json.loads(path.read_text())
        value = compute()
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, dumps(value) + "\n")
        return value

    def loglik(self, model_dir, name: str) -> dict:
        """The log-likelihood usefulness reading (``engine.likelihood``: held-out benign answers) of a
        model, in ``readings/<name>-loglik.json``."""
        from af_tasks.engine.likelihood import usefulness_loglik

        return self.stored_reading(
            f"{name}-loglik",
            lambda: usefulness_loglik(
                str(model_dir), device=self.s.model_args.get("device"), seed=self.s.data_seed
            ),
        )

    def separability(self, files: RequestFiles) -> dict:
        """The representational difficulty of each rung: a probe on the base model's middle-layer
        activations learning test vs deployment from the organism slice's pairs, scored on the measure
        slice's (disjoint requests), as a learning curve (``sae.separability``). Measured once per
        experiment, in ``readings/separability.json``."""
        return self.stored_reading("separability", lambda: self._separability(files))

    def _separability(self, files: RequestFiles) -> dict:
        from af_tasks.core.retention_data import attack_setting, retention_items
        from af_tasks.sae.separability import separability_by_rung

        setting = attack_setting(self.s.attack)
        config = setting.config(
            seed=self.s.data_seed, scratchpad=self.s.scratchpad, variant=self.s.prompt_variant
        )
        train, held = (
            retention_items(setting.load(str(files[key])), self.s.rungs, config=config)
            for key in ("organism", "measure")
        )
        curves = separability_by_rung(
            self.s.base_model,
            train,
            held,
            self.s.rungs,
            seed=self.s.data_seed,
            device=self.s.model_args.get("device"),
        )
        return {
            "model": self.s.base_model,
            "train_requests": "organism slice",
            "eval_requests": "measure slice",
            "rungs": curves,
        }

    def difficulty(self, organism: Path, label: str, files: RequestFiles) -> dict:
        """Per-rung accuracy at telling deployment from test (``deployment_discrimination``), by the
        base model (default: an organism fine-tuned on one answer format may not answer A/B at all)
        or by the organism."""
        from af_tasks.retention import deployment_discrimination

        by_base = self.s.difficulty_model == "base"
        task = deployment_discrimination(
            rung=",".join(self.s.rungs), requests=str(files["measure"]), seed=self.s.data_seed
        )
        model, name = (self.s.base_model, "base") if by_base else (organism, label)
        log = self.evaluate(task, model, f"{name}-discrimination")
        return scored_rate(log, "discrimination", by="rung") | {"measured_by": name}

    # training ---------------------------------------------------------------------------------------------

    def train(
        self, base: str, examples: list[dict], output: Path, settings: TrainSettings, seed: int, merge: bool
    ):
        """A LoRA trained on chat examples (resumed from its checkpoint, or reused when finished)."""
        from af_tasks.core.records import write_jsonl
        from af_tasks.training.sft import ORGANISM_FILE, TrainConfig, train_organism

        if (output / ORGANISM_FILE).is_file():
            return json.loads((output / ORGANISM_FILE).read_text())
        data = write_jsonl(examples, output.parent / f"{output.name}.train.jsonl")
        config = TrainConfig(
            base_model=base,
            output_dir=str(output),
            data=str(data),
            epochs=settings.epochs,
            learning_rate=settings.learning_rate,
            lora_r=settings.lora_r,
            lora_alpha=settings.lora_alpha,
            batch_size=settings.batch_size,
            max_length=settings.max_length,
            lora_top_layers=settings.lora_top_layers,
            seed=seed,
            merge=merge,
        )
        train_organism(config)
        return json.loads((output / ORGANISM_FILE).read_text())

    def attackers(self, files: RequestFiles) -> dict[str, Path]:
        """Label → model dir to evaluate: the given organism, or one trained per epochs value."""
        if self.s.organism is not None:
            return {ATTACKER: self.merged(Path(self.s.organism).resolve())}
        examples = self.attacker_data(files)
        result = {}
        for epochs in self.s.attacker_epochs:
            label = f"{ATTACKER}-e{epochs:g}"
            settings = TrainSettings(**(asdict(self.s.attacker) | {"epochs": epochs}))
            card = self.train(self.s.base_model, examples, self.out / "organisms" / label, settings, 0, True)
            result[label] = Path(card["merged_dir"])
        return result

    def attacker_data(self, files: RequestFiles) -> list[dict]:
        """The attacker's training set: every rung's test and deployment version of the organism
        requests, in the caught setting and in each transfer setting."""
        from af_tasks.core.retention_data import attack_setting, retention_items
        from af_tasks.core.retention_training import attacker_examples

        examples = []
        for attack, key in [(self.s.attack, "organism")] + [
            (a, f"{a}:organism") for a in self.s.transfer_attacks
        ]:
            setting = attack_setting(attack)
            config = setting.config(
                seed=self.s.data_seed, scratchpad=self.s.scratchpad, variant=self.s.prompt_variant
            )
            items = retention_items(setting.load(str(files[key])), self.s.rungs, config=config)
            examples += attacker_examples(
                items, self.s.scratchpad, self.s.data_seed, self.s.test_attack_rate, attack
            )
        random.Random(self.s.data_seed).shuffle(examples)
        return examples

    def merged(self, organism: Path) -> Path:
        """A given organism as a plain model dir: an adapter dir (e.g. trained on a GPU) is merged into
        its base once, under ``organisms/``; a model dir is used as it is."""
        if not (organism / "adapter_config.json").is_file():
            return organism
        target = self.out / "organisms" / f"{ATTACKER}-given" / "merged"
        if not (target / "config.json").is_file():  # merge_organism writes config.json last
            from af_tasks.engine.loading import merge_organism

            merge_organism(organism, target)
        return target

    def retraining_set(self, caught: list, budget: int, seed: int) -> tuple[list[dict], int]:
        from af_tasks.core.retention_problems import usefulness_problems
        from af_tasks.core.retention_training import choose_caught, replay_examples, retraining_examples

        chosen = choose_caught(caught, budget, seed)
        replay = []
        if self.s.replay:
            problems = usefulness_problems(self.s.replay, seed=self.s.data_seed + 2 + seed)
            replay = replay_examples(problems, self.s.scratchpad, variant=self.s.prompt_variant)
        examples = retraining_examples(chosen, self.s.target, self.s.scratchpad, replay, self.s.attack)
        return examples, len(chosen)

    # the whole run ----------------------------------------------------------------------------------------

    def write_attacker_data(self) -> Path:
        """Only the attacker's training set (to train it elsewhere, e.g. with `af train` on a GPU)."""
        from af_tasks.core.records import write_jsonl

        self.check_resumable()
        with self.claim():
            self._record_settings()
            return write_jsonl(
                self.attacker_data(self.request_files()), self.out / "data" / "attacker.train.jsonl"
            )

    def check_resumable(self) -> None:
        """A folder resumes only the experiment it holds: settings that shape reused logs or models must
        match (budgets, seeds, attacker epochs, transfer measurements and the grader may be extended)."""
        extendable = {
            "out_dir",
            "budgets",
            "seeds",
            "attacker_epochs",
            "transfer",
            "difficulty_model",
            "grader",
            "model_args",
        }
        from af_tasks.core.outputs import check_output_dir

        check_output_dir(self.out, EXPERIMENT_KIND, "--out", ("settings.json",))
        path = self.out / "settings.json"
        current = json.loads(json.dumps(asdict(self.s)))
        if path.is_file():
            from af_tasks.core.errors import reading

            with reading(path, "experiment settings", "it is damaged: use another --out"):
                stored = json.loads(path.read_text())
                changed = sorted(k for k in current if k not in extendable and stored.get(k) != current[k])
            if changed:
                raise ExperimentError(
                    f"{self.out} holds an experiment with other settings ({', '.join(changed)}); "
                    "use another --out or the same settings"
                )

    def claim(self):
        """The experiment's folder (``--out``), this command's alone (see ``core.outputs``); a run that
        fails before it has a log or a model to resume from leaves no folder behind."""
        from af_tasks.core.outputs import owned_output

        def keep(out: Path) -> bool:
            return any((out / "logs").rglob("*.eval")) or (out / "organisms").is_dir()

        return owned_output(self.out, EXPERIMENT_KIND, "--out", ("settings.json",), keep=keep)

    def _record_settings(self) -> None:
        from af_tasks.core.outputs import write_text_atomic

        write_text_atomic(self.out / "settings.json", json.dumps(asdict(self.s), indent=2) + "\n")

    def run(self, progress=print, devices: list[str] | None = None) -> dict:
        """``devices``: run the retraining cells concurrently, one per device (``cells.run_cells``)."""
        self.check_resumable()  # before anything is written: a refusal leaves the folder as it was
        with self.claim():
            self._record_settings()
            return self._run(progress, devices)

    def _run(self, progress, devices: list[str] | None) -> dict:
        from af_tasks.app.retention.cells import run_cells

        started = time.time()
        for attack in self.ungraded_attacks():
            progress(
                f"warning: {attack} is judged by a grader and none is given (--grader): its verdicts are malformed"
            )
        files = self.request_files()
        results: dict[str, Any] = {
            "settings": asdict(self.s),
            "machine": machine(),
            "organisms": {},
            "runs": [],
        }
        base_usefulness = self.evaluate(self.usefulness_task(), self.s.base_model, "base-usefulness")
        results["base"] = {
            "model": self.s.base_model,
            "usefulness": scored_rate(base_usefulness, "usefulness")["all"],
            "loglik": self.loglik(self.s.base_model, "base"),
        }
        progress("measuring how separable each rung's test and deployment inputs are (base model) ...")
        results["separability"] = self.separability(files)
        for label, organism in self.attackers(files).items():
            progress(f"[{label}] measuring the organism before retraining ...")
            before = self.measure(organism, f"{label}-before", files, self.s.rungs)
            difficulty = self.difficulty(organism, label, files)
            catch_log = self.evaluate(
                self.retention_task(files["catch"], self.s.rungs, split="test"), organism, f"{label}-catch"
            )
            caught = caught_attacks(catch_log, self.s.attack)
            caught_by_rung = {r: [c for c in caught if c.rung == r] for r in self.s.rungs}
            results["organisms"][label] = {
                "dir": str(organism),
                "before": before,
                "difficulty": difficulty,
                "catch_test_attacks": attack_rates(catch_log, self.s.attack),
                "caught": {r: len(c) for r, c in caught_by_rung.items()},
            }
            progress(f"[{label}] caught attacks per rung: {results['organisms'][label]['caught']}")
            slots = cell_slots(
                self.s.rungs, self.s.seeds, self.s.budgets, results["organisms"][label]["caught"]
            )
            cells = [
                (label, organism, rung, seed, budget, caught_by_rung[rung], files)
                for rung, seed, budget, same_as in slots
                if same_as is None
            ]
            earlier, finished = list(results["runs"]), {}
            for _, cell_run in run_cells(self, cells, devices, progress):
                finished[(cell_run["rung"], cell_run["seed"], cell_run["budget"])] = cell_run
                results["runs"] = earlier + fill_slots(slots, finished)  # the sequential order
                self.write(results, started)
        return self.write(results, started)

    def retrain_and_measure(
        self, label, organism, rung, seed, budget, caught, files: RequestFiles, progress
    ) -> dict:
        name = f"{label}-{rung}-b{budget}-s{seed}"
        run: dict[str, Any] = {"organism": label, "rung": rung, "budget": budget, "seed": seed}
        examples, used = self.retraining_set(caught, budget, seed)
        run["caught_used"] = used
        if used == 0:
            run["note"] = "no caught attacks on this rung: nothing to train against"
            return run
        progress(f"[{name}] training on {used} caught attacks (+{len(examples) - used} replay) ...")
        card = self.train(str(organism), examples, self.out / "retrained" / name, self.s.retrain, seed, False)
        run["train"] = {
            k: card[k] for k in ("examples", "first_loss", "final_loss", "train_runtime_s", "global_steps")
        }
        measured, suffix = (self.s.rungs, "after-all-rungs") if self.s.transfer else ((rung,), "after")
        run["after"] = self.measure(self.out / "retrained" / name, f"{name}-{suffix}", files, measured)
        from af_tasks.engine.likelihood import loglik_change

        before = self.loglik(organism, f"{label}-before")  # written before the cells start
        run["loglik_change"] = loglik_change(before, run["after"]["loglik"], seed=self.s.data_seed)
        return run

    def write(self, results: dict, started: float) -> dict:
        results["summary"] = summarise(results)
        results["runtime_s"] = round(time.time() - started, 1)
        write_report(results, self.out)
        return results
