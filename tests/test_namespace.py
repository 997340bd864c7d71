"""The suite installs beside anything: one distinctive top-level package, the same registry names from a
regular install, an editable install and the repo root, and a foreign repo with its own ``scorers/`` and
``solvers/`` packages keeps working with the suite installed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest
from inspect_ai.log import read_eval_log

import af_tasks._registry as registry

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
CARD_FOLDERS = {  # folder -> subpackage of af_tasks it installs as
    "af_tasks": "",
    "core": "core",
    "engine": "engine",
    "training": "training",
    "sae": "sae",
    "solvers": "solvers",
    "scorers": "scorers",
    "app": "app",
}
NAMES_SCRIPT = (
    "import json, af_tasks._registry as r; from inspect_ai._util.registry import registry_info; "
    "print(json.dumps(sorted(registry_info(getattr(r, n)).name for n in r.__all__)))"
)


def _offline_env(**extra: str) -> dict[str, str]:
    return os.environ | {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"} | extra


def _registry_names(cwd: Path, env: dict[str, str] | None = None) -> list[str]:
    result = subprocess.run(
        [PYTHON, "-c", NAMES_SCRIPT], cwd=cwd, capture_output=True, text=True, env=env, check=True
    )
    return json.loads(result.stdout)


EXPECTED_NAMES = sorted(f"af_tasks/{name}" for name in registry.__all__)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The suite's wheel, built offline from a copy of the sources (the working tree gets no build/)."""
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md", *CARD_FOLDERS):
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(src, source / name)
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [PYTHON, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q", "-w", str(out),
         str(source)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    [built] = out.glob("af_tasks-*.whl")
    return built


@pytest.mark.cli
def test_wheel_installs_one_distinctive_top_level_package(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert top_level == {"af_tasks"}
    entry_points = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt")))
    assert "[inspect_ai]\naf_tasks = af_tasks._registry" in entry_points.decode()


@pytest.mark.cli
def test_wheel_holds_every_source_and_data_file_of_the_card_folders(wheel):
    """The package-dir mapping misses nothing: each folder's modules, templates and data are inside."""
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = set()
    for folder, subpackage in CARD_FOLDERS.items():
        for path in (ROOT / folder).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts:
                inside = "/".join(
                    filter(None, ("af_tasks", subpackage, path.relative_to(ROOT / folder).as_posix()))
                )
                expected.add(inside)
    assert expected - names == set()


@pytest.mark.cli
def test_registry_names_are_the_same_installed_editable_and_from_the_repo_root(wheel, tmp_path):
    editable_elsewhere = _registry_names(tmp_path)
    editable_from_root = _registry_names(ROOT)
    site = tmp_path / "site-packages"  # a regular install of the wheel, ahead of the editable one
    subprocess.run(
        [PYTHON, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target", str(site), str(wheel)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    regular = _registry_names(tmp_path, env=os.environ | {"PYTHONPATH": str(site)})
    assert editable_elsewhere == editable_from_root == regular == EXPECTED_NAMES


@pytest.mark.cli
def test_editable_install_serves_the_working_tree():
    """`make` installs editable: the modules Python imports are the files in this checkout."""
    code = (
        "import af_tasks.core.protocol as p, af_tasks.scorers.compliance as c; print(p.__file__, c.__file__)"
    )
    out = subprocess.run(
        [PYTHON, "-c", code], cwd="/", capture_output=True, text=True, check=True
    ).stdout.split()
    assert [Path(p) for p in out] == [ROOT / "core" / "protocol.py", ROOT / "scorers" / "compliance.py"]


FOREIGN_REPO = {
    "scorers/__init__.py": "",
    "scorers/team.py": """
        from inspect_ai.scorer import Score, Target, accuracy, scorer

        @scorer(metrics=[accuracy()])
        def team_exact():
            async def score(state, target: Target) -> Score:
                return Score(value=1 if state.output.completion == target.text else 0)
            return score
    """,
    "solvers/__init__.py": "",
    "solvers/team.py": """
        from inspect_ai.model import ModelOutput
        from inspect_ai.solver import solver

        @solver
        def team_echo():
            async def solve(state, generate):
                state.output = ModelOutput.from_content("none", state.input_text.upper())
                return state
            return solve
    """,
    "team_task.py": """
        from inspect_ai import Task, task
        from inspect_ai.dataset import Sample

        from scorers.team import team_exact
        from solvers.team import team_echo

        @task
        def team_task():
            return Task(dataset=[Sample(input="ok", target="OK")], solver=team_echo(), scorer=team_exact())
    """,
}


def _foreign_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "team-repo"
    for name, text in FOREIGN_REPO.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(textwrap.dedent(text))
    return repo


def _inspect(args: list[str], cwd: Path, logs: Path) -> Path:
    before = set(logs.glob("*.eval")) if logs.is_dir() else set()
    subprocess.run(
        [PYTHON, "-m", "inspect_ai", *args, "--log-dir", str(logs), "--display", "none"],
        cwd=cwd, check=True, capture_output=True, text=True, env=_offline_env(),
    )  # fmt: skip
    [new] = set(logs.glob("*.eval")) - before
    return new


@pytest.mark.cli
def test_a_foreign_repo_with_its_own_scorers_and_solvers_runs_beside_the_suite(tmp_path):
    repo = _foreign_repo(tmp_path)
    log = read_eval_log(str(_inspect(["eval", "team_task.py", "--model", "none"], repo, tmp_path / "logs")))
    assert log.status == "success"
    assert [s.scores["team_exact"].value for s in log.samples] == [1]


@pytest.mark.cli
@pytest.mark.slow
def test_the_suite_runs_from_inside_a_foreign_repo_and_from_its_own_root(tmp_path, tiny_llama_dir):
    """`python -m inspect_ai eval af_tasks/free_tier` puts the working directory first on sys.path: from a
    repo with its own scorers/ and from this checkout's root, the suite's task and scorers still resolve."""
    repo = _foreign_repo(tmp_path)
    args = ["eval", "af_tasks/free_tier", "--model", f"organism/{tiny_llama_dir}", "--limit", "2",
            "-T", "max_tokens=4", "-T", "max_turns=1"]  # fmt: skip
    for cwd in (repo, ROOT):
        log = read_eval_log(str(_inspect(args, cwd, tmp_path / f"logs-{cwd.name}")))
        assert log.status == "success" and log.eval.task == "af_tasks/free_tier"
        assert len(log.samples) == 2 and all("compliance" in s.scores for s in log.samples)
