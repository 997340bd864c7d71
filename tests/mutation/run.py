"""Mutation testing of the core readings with cosmic-ray (``make mutation``; ``make mutation-sample``).

Why a runner: cosmic-ray rewrites the module it mutates in place. Here it does so in a scratch copy of
the tree (tracked and untracked, not ignored files), whose ``af_tasks/<sub>`` folders are links to the
copy's own ``core/``, ``scorers/``... and which comes first on ``PYTHONPATH``; so an edit or a test run in
the working tree never meets a mutated file, and a crash mid-mutant cannot leave one behind.

One cosmic-ray session per ``tests/mutation/<name>.toml`` (its module and the fast tests that read it),
run one after another (a mutant in one module would fail another module's tests). ``--sample N``
keeps a seeded random N of a session's mutants (the rest are marked skipped, as cosmic-ray's own
filters do); the score of a sample is reported with its n and a Wilson 95 % interval.
``--rerun-survivors`` re-tests only the mutants that survived the last run (after new tests; tests
are only ever added, so a killed mutant stays killed) and keeps the earlier figures as "before".
Session files live in ``tests/mutation/.sessions/`` (ignored); ``report.md`` and ``report.json`` are
written next to this file. Survivors judged equivalent or harmless are explained in ``survivors.toml``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SESSIONS = HERE / ".sessions"
SUBPACKAGES = ("core", "engine", "training", "sae", "solvers", "scorers", "app")
ORDER = ("protocol", "judging", "markers", "stats", "metrics", "report", "prompting", "retention_training")
"""Most important first: the parser, the vote rules, the markers, the statistics and the metrics."""


EVALUATED_ANNOTATIONS = {"PromptConfig"}
"""Classes whose field annotations something evaluates (``app/options.py`` calls ``get_type_hints``)."""


NO_EVALUATED_ANNOTATIONS = ("core/", "scorers/metrics.py")
"""Modules whose annotations stay strings (``from __future__ import annotations``) that nothing evaluates,
apart from EVALUATED_ANNOTATIONS and decorated functions (Inspect evaluates a metric's type hints)."""


def annotation_spans(module: Path) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """Where a mutant is provably equivalent: annotations that stay strings and are never evaluated —
    signatures and local annotations of undecorated functions, and fields of classes not in
    EVALUATED_ANNOTATIONS — in the modules of NO_EVALUATED_ANNOTATIONS."""
    import ast

    source = (ROOT / module).read_text("utf-8")
    if (
        not str(module).startswith(NO_EVALUATED_ANNOTATIONS)
        or "from __future__ import annotations" not in source
    ):
        return []
    spans = []

    def add(node: ast.AST | None) -> None:
        if node is not None:
            spans.append(((node.lineno, node.col_offset), (node.end_lineno, node.end_col_offset)))

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if child.decorator_list:
                    continue  # a decorator may read the hints (Inspect's @metric, @scorer do)
                arguments = child.args
                for arg in [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs,
                            arguments.vararg, arguments.kwarg]:  # fmt: skip
                    add(arg.annotation if arg else None)
                add(child.returns)
                for inner in ast.walk(child):
                    if isinstance(inner, ast.AnnAssign):
                        add(inner.annotation)
                visit(child)  # nested functions and classes
            elif isinstance(child, ast.ClassDef):
                if child.name not in EVALUATED_ANNOTATIONS:
                    for inner in child.body:
                        if isinstance(inner, ast.AnnAssign):
                            add(inner.annotation)
                visit(child)

    visit(ast.parse(source))
    return spans


def in_spans(position: tuple[int, int], spans) -> bool:
    return any(start <= position < end for start, end in spans)


def configs() -> dict[str, Path]:
    return {name: HERE / f"{name}.toml" for name in ORDER if (HERE / f"{name}.toml").exists()}


def scratch_copy() -> Path:
    """A copy of the tree in which ``import af_tasks.core`` resolves to the copy's ``core/``."""
    dest = Path(tempfile.mkdtemp(prefix="af-mutation-"))
    files = (
        subprocess.run(
            ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True, check=True
        )
        .stdout.decode()
        .split("\0")
    )
    for name in filter(None, files):
        source = ROOT / name
        if source.is_symlink() or not source.is_file():
            continue
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    (dest / "models").symlink_to((ROOT / "models").resolve())
    for sub in SUBPACKAGES:
        (dest / "af_tasks" / sub).symlink_to(Path("..") / sub)
    return dest


def environment(scratch: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(scratch)
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # a mutant's bytecode never outlives it
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def cosmic_ray(*args: str, cwd: Path, env: dict[str, str]) -> None:
    subprocess.run([str(Path(sys.executable).parent / "cosmic-ray"), *args], cwd=cwd, env=env, check=True)


def jobs(db: Path) -> list[tuple[str, str, int, int, int]]:
    """(job_id, operator, occurrence, line, column) of every mutant of a session, in a stable order."""
    with sqlite3.connect(db) as con:
        rows = con.execute(
            "SELECT job_id, operator_name, occurrence, start_pos_row, start_pos_col FROM mutation_specs"
        ).fetchall()
    return sorted(rows, key=lambda r: (r[1], r[2]))


def skip(db: Path, job_ids: list[str], why: str = "not sampled") -> None:
    with sqlite3.connect(db) as con:
        con.executemany(
            "INSERT OR REPLACE INTO work_results (worker_outcome, output, test_outcome, diff, job_id) "
            "VALUES ('SKIPPED', ?, NULL, NULL, ?)",
            [(why, j) for j in job_ids],
        )


def skip_pending(db: Path, job_ids: list[str], why: str) -> None:
    """Mark as skipped those of ``job_ids`` that have no result yet."""
    with sqlite3.connect(db) as con:
        done = {r[0] for r in con.execute("SELECT job_id FROM work_results")}
    skip(db, [j for j in job_ids if j not in done], why)


def survived_ids(db: Path, spans) -> list[str]:
    """Survivors outside annotations (those are equivalent: re-testing them proves nothing)."""
    with sqlite3.connect(db) as con:
        rows = con.execute(
            "SELECT s.job_id, s.start_pos_row, s.start_pos_col FROM mutation_specs s JOIN work_results r "
            "ON s.job_id = r.job_id WHERE r.test_outcome = 'SURVIVED'"
        ).fetchall()
    return [job for job, line, column in rows if not in_spans((line, column), spans)]


def forget(db: Path, job_ids: list[str]) -> None:
    with sqlite3.connect(db) as con:
        con.executemany("DELETE FROM work_results WHERE job_id=?", [(j,) for j in job_ids])


def wilson(k: int, n: int) -> tuple[float, float]:
    from af_tasks.core.stats import wilson_interval

    return wilson_interval(k, n) if n else (float("nan"), float("nan"))


def summarise(name: str, db: Path) -> dict:
    config = tomllib.loads((HERE / f"{name}.toml").read_text())["cosmic-ray"]
    with sqlite3.connect(db) as con:
        rows = con.execute(
            "SELECT s.job_id, s.operator_name, s.occurrence, s.start_pos_row, s.start_pos_col, r.worker_outcome, "
            "r.test_outcome, r.output, r.diff FROM mutation_specs s LEFT JOIN work_results r "
            "ON s.job_id = r.job_id"
        ).fetchall()
    counts = {"killed": 0, "timeout": 0, "survived": 0, "incompetent": 0, "pending": 0, "skipped": 0}
    counts["equivalent"] = 0
    spans = annotation_spans(Path(config["module-path"])) if (ROOT / config["module-path"]).exists() else []
    survivors = []
    for _job, operator, occurrence, line, column, worker, test, output, diff in rows:
        if in_spans((line, column), spans):
            counts["equivalent"] += 1
        elif worker == "SKIPPED":
            counts["skipped"] += 1
        elif test is None:
            counts["pending"] += 1
        elif test == "KILLED":
            counts["timeout" if output == "timeout" else "killed"] += 1
        elif test == "SURVIVED":
            counts["survived"] += 1
            survivors.append(
                {"line": line, "operator": operator.removeprefix("core/"), "occurrence": occurrence,
                 "diff": "\n".join(lin for lin in (diff or "").splitlines() if lin[:1] in "+-"
                                   and lin[:3] not in ("+++", "---"))}
            )  # fmt: skip
        else:
            counts["incompetent"] += 1
    tested = counts["killed"] + counts["timeout"] + counts["survived"]
    killed = counts["killed"] + counts["timeout"]
    low, high = wilson(killed, tested)
    return {
        "module": config["module-path"],
        "test_command": config["test-command"],
        "mutants": len(rows),
        "tested": tested,
        "sampled": counts["skipped"] > 0,
        **counts,
        "score": killed / tested if tested else None,
        "ci95": [low, high],
        "survivors": sorted(survivors, key=lambda s: (s["line"], s["operator"], s["occurrence"])),
    }


def explanations() -> dict[str, str]:
    path = HERE / "survivors.toml"
    if not path.exists():
        return {}
    table = tomllib.loads(path.read_text())
    return {f"{m}:{key}": why for m, entries in table.items() for key, why in entries.items()}


def survivor_key(survivor: dict) -> str:
    return f"{survivor['line']}:{survivor['operator']}:{survivor['occurrence']}"


def write_report(results: dict, meta: dict) -> None:
    why = explanations()
    for name, result in results.items():
        for survivor in result["survivors"]:
            survivor["why"] = why.get(f"{name}:{survivor_key(survivor)}", "UNEXPLAINED")
        # Equivalent survivors cannot be killed by any test: the score leaves them out (raw_score keeps them).
        equivalent = sum(s["why"].startswith("equivalent") for s in result["survivors"])
        killed = result["killed"] + result["timeout"]
        result["equivalent_survivors"] = equivalent
        result["raw_score"] = result["score"]
        result["score"] = killed / (result["tested"] - equivalent) if result["tested"] > equivalent else None
        result["ci95"] = list(wilson(killed, result["tested"] - equivalent))
    (HERE / "report.json").write_text(json.dumps({"meta": meta, "modules": results}, indent=1) + "\n")
    lines = [
        "# Mutation report (cosmic-ray 8.7.0)",
        "",
        f"Written by `tests/mutation/run.py` on {meta['date']}; sampled modules drew their mutants with "
        f"`random.Random(f'{meta['seed']}:<module>')` (seed {meta['seed']}).",
        "Score = killed (timeouts included) / (tested − survivors shown equivalent below); raw = killed / tested."
        " Mutants inside annotations nothing evaluates are equivalent by construction (run.py"
        " `annotation_spans`; see the notes) and are not tested.",
        "A sampled module's score comes with its n and a Wilson 95 % interval.",
        "",
        "| module | mutants | in annotations | tested | killed | timeouts | survived (equivalent) | score (95 % CI) | raw | before (raw) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results.values():
        score = "–" if r["score"] is None else f"{100 * r['score']:.1f} %"
        if r["sampled"]:
            score += f" ({100 * r['ci95'][0]:.0f}–{100 * r['ci95'][1]:.0f} %, sample n={r['tested']})"
        else:
            score += " (every mutant)"
        raw = "–" if r["raw_score"] is None else f"{100 * r['raw_score']:.1f} %"
        before = r.get("before")
        before_text = "–" if not before or before["score"] is None else (
            f"{100 * before['score']:.1f} % ({before['survived']} survived)"
        )  # fmt: skip
        lines.append(
            f"| `{r['module']}` | {r['mutants']} | {r['equivalent']} | {r['tested']} | {r['killed']} | "
            f"{r['timeout']} | {r['survived']} ({r['equivalent_survivors']}) | {score} | {raw} | {before_text} |"
        )
    lines += ["", "## Surviving mutants", ""]
    for r in results.values():
        if not r["survivors"]:
            continue
        lines += [f"### `{r['module']}`", ""]
        for s in r["survivors"]:
            diff = s["diff"].replace("\n", " ⟶ ").replace("|", "\\|")
            lines.append(f"- line {s['line']}, {s['operator']} #{s['occurrence']}: `{diff}` — {s['why']}")
        lines.append("")
    notes = HERE / "notes.md"
    if notes.exists():
        lines += ["", notes.read_text("utf-8").strip()]
    (HERE / "report.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modules", default=",".join(configs()), help="comma-separated session names")
    parser.add_argument(
        "--sample", type=int, default=0, help="N seeded mutants per module (default: the TOML's)"
    )
    parser.add_argument("--sessions", type=Path, default=SESSIONS, help="where the session files go")
    parser.add_argument("--seed", type=int, default=20)
    parser.add_argument("--rerun-survivors", action="store_true")
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--no-report", action="store_true", help="run only (another run writes the report)")
    args = parser.parse_args()
    names = [n for n in args.modules.split(",") if n]
    sessions = args.sessions
    sessions.mkdir(parents=True, exist_ok=True)
    if not args.report_only:
        scratch = scratch_copy()
        env = environment(scratch)
        try:
            for name in names:
                db = sessions / f"{name}.sqlite"
                config = configs()[name]
                sample = args.sample or tomllib.loads(config.read_text()).get("af-mutation", {}).get(
                    "sample", 0
                )
                started = time.time()
                if args.rerun_survivors:
                    before_file = db.with_suffix(".before.json")
                    if not before_file.exists():
                        first = summarise(name, db)
                        keys = ("tested", "killed", "timeout", "survived", "score", "ci95")
                        before_file.write_text(json.dumps({k: first[k] for k in keys}))
                    module = Path(tomllib.loads(config.read_text())["cosmic-ray"]["module-path"])
                    spans = annotation_spans(module)
                    forget(db, survived_ids(db, spans))
                    pending = [j for j, _op, _occ, line, col in jobs(db) if in_spans((line, col), spans)]
                    skip_pending(db, pending, "annotation")
                else:
                    db.unlink(missing_ok=True)
                    db.with_suffix(".before.json").unlink(missing_ok=True)
                    cosmic_ray("init", str(config), str(db), cwd=scratch, env=env)
                    module = Path(tomllib.loads(config.read_text())["cosmic-ray"]["module-path"])
                    spans = annotation_spans(module)
                    skip(
                        db,
                        [j for j, _op, _occ, line, col in jobs(db) if in_spans((line, col), spans)],
                        "annotation",
                    )
                    if sample:
                        ids = [j[0] for j in jobs(db)]  # drawn over every mutant: annotations count in n
                        keep = set(random.Random(f"{args.seed}:{name}").sample(ids, min(sample, len(ids))))
                        skip(db, [j for j in ids if j not in keep])
                cosmic_ray("exec", str(config), str(db), cwd=scratch, env=env)
                done = summarise(name, db)
                print(
                    f"{name}: {done['score']} ({done['tested']} tested, {time.time() - started:.0f} s)",
                    flush=True,
                )
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    if args.no_report:
        return
    results = {}
    for name in configs():
        db = sessions / f"{name}.sqlite"
        if db.exists():
            before = db.with_suffix(".before.json")
            results[name] = summarise(name, db) | {
                "before": json.loads(before.read_text()) if before.exists() else None
            }
    meta = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "seed": args.seed}
    write_report(results, meta)


if __name__ == "__main__":
    main()
