"""Build the carry set a GPU node without internet needs to run the suite: the suite's own wheel plus
the wheels of every runtime requirement (the closure of ``pyproject.toml``'s ``dependencies``) that the
node's image lacks, resolved by pip for that node's platform (CPython 3.12, manylinux x86-64).

Why a resolver and not a hand-kept list: the closure moves with the project's requirements (Inspect
alone pulls ~50 distributions); what the image already holds (torch, transformers, numpy, ...) is read
from a package list, the node's ``python3 -m pip list --format=freeze`` (or names, one per line), so
nothing large is carried twice. Parts of at most ``--part-mib`` each are written as ``DEST/part1``, ...,
one per call when a call may carry only so much (the device tool: 64 MiB), and the suite's own wheel
as ``DEST/suite``.

    python benchmarks/gpu_carry.py --image benchmarks/gpu_image_packages.txt --dest .whl
    python benchmarks/gpu_carry.py --skip sae-lens,transformer-lens,wandb   # what the retention run needs

There, from the repository root, after the parts have arrived:

    python3 -m pip install -q --no-index --no-deps --target /tmp/site DEST/part*/*.whl DEST/suite/*.whl
    export PYTHONPATH=/tmp/site PYTHONSAFEPATH=1
    # after the code changed: rebuild the suite there from the checkout with the carried setuptools
    PYTHONPATH=/tmp/site python3 -m pip wheel -q --no-deps --no-build-isolation --no-index -w /tmp/w .
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PLATFORM_ARGS = [
    "--only-binary=:all:",
    "--python-version",
    "3.12",
    "--implementation",
    "cp",
    *[
        arg
        for tag in ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64", "linux_x86_64")
        for arg in ("--platform", tag)
    ],
]


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def image_packages(path: Path | None) -> set[str]:
    """Names the node already has: ``name==version`` lines (pip freeze) or bare names; ``#`` comments."""
    if path is None:
        return set()
    names = set()
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.add(normalise(re.split(r"[=<>!~ @]", line, maxsplit=1)[0]))
    return names


def requirements() -> list[str]:
    """The runtime requirements, plus the build requirements: a node can then rebuild the suite from
    its checkout (``pip wheel --no-build-isolation .``) after the code changed, without a new carry."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return project["project"]["dependencies"] + project["build-system"]["requires"]


def resolve(reqs: list[str], skip: set[str] = frozenset()) -> list[tuple[str, str]]:
    """(name, version) of the closure of ``reqs`` as installed in this environment (the versions the
    suite's tests ran with), markers evaluated for the node (CPython 3.12 on Linux x86-64).

    Why not pip's resolver for the foreign platform: it backtracks for many minutes over this closure;
    the environment that ``make`` built here is already one consistent resolution of the same file."""
    import importlib.metadata as metadata

    from packaging.requirements import Requirement

    node = {"python_version": "3.12", "python_full_version": "3.12.3", "sys_platform": "linux",
            "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix",
            "implementation_name": "cpython", "platform_python_implementation": "CPython", "extra": ""}  # fmt: skip
    found: dict[str, tuple[str, str]] = {}
    todo = [Requirement(r) for r in reqs]
    while todo:
        req = todo.pop()
        if req.marker is not None and not req.marker.evaluate(node):
            continue
        key = normalise(req.name)
        if key in found or key in skip:
            continue
        try:
            dist = metadata.distribution(req.name)
        except metadata.PackageNotFoundError:
            raise SystemExit(
                f"{req.name} (needed by the suite) is not installed here: run make first"
            ) from None
        if not req.specifier.contains(dist.version, prereleases=True):
            raise SystemExit(f"{req.name} {dist.version} here does not satisfy {req}: run make first")
        found[key] = (dist.metadata["Name"], dist.version)
        todo += [Requirement(r) for r in dist.requires or []]
    return sorted(found.values())


def download(pins: list[str], dest: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--no-deps", *PLATFORM_ARGS, "-d", str(dest), *pins],
        check=True,
    )


def suite_wheel(dest: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(dest), str(ROOT)],
        check=True,
        cwd=ROOT,
    )  # fmt: skip
    shutil.rmtree(ROOT / "build", ignore_errors=True)
    for info in ROOT.glob("*.egg-info"):
        shutil.rmtree(info)


def split_parts(wheels: list[Path], dest: Path, part_bytes: int) -> list[Path]:
    """Largest first into the first part with room (first-fit decreasing): few parts, each under the cap."""
    parts: list[tuple[Path, int]] = []
    for wheel in sorted(wheels, key=lambda w: w.stat().st_size, reverse=True):
        size = wheel.stat().st_size
        if size > part_bytes:
            raise SystemExit(f"{wheel.name} ({size / 2**20:.1f} MiB) is larger than --part-mib")
        for i, (folder, used) in enumerate(parts):
            if used + size <= part_bytes:
                parts[i] = (folder, used + size)
                break
        else:
            folder = dest / f"part{len(parts) + 1}"
            folder.mkdir()
            parts.append((folder, size))
        wheel.rename(folder / wheel.name)
    return [folder for folder, _ in parts]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dest", type=Path, default=ROOT / ".whl", help="folder to fill (emptied first)")
    parser.add_argument("--image", type=Path, default=ROOT / "benchmarks" / "gpu_image_packages.txt",
                        help="the node's package list (pip freeze or names); those are not carried")  # fmt: skip
    parser.add_argument(
        "--skip", default="", help="comma-separated distributions not to carry (unused there)"
    )
    parser.add_argument("--part-mib", type=float, default=60.0, help="largest part, MiB")
    args = parser.parse_args()
    if not args.image.is_file():
        raise SystemExit(f"--image {args.image} does not exist (the node's `pip list --format=freeze`)")
    have = image_packages(args.image)
    resolved = resolve(requirements(), {normalise(n) for n in args.skip.split(",") if n.strip()})
    carried = [(name, version) for name, version in resolved if normalise(name) not in have]
    if args.dest.exists():
        shutil.rmtree(args.dest)
    args.dest.mkdir(parents=True)
    staging = args.dest / "staging"
    staging.mkdir()
    download([f"{name}=={version}" for name, version in carried], staging)
    parts = split_parts(sorted(staging.glob("*.whl")), args.dest, int(args.part_mib * 2**20))
    staging.rmdir()
    suite_wheel(args.dest / "suite")
    manifest = {
        "requirements": requirements(),
        "resolved": len(resolved),
        "carried": [f"{name}=={version}" for name, version in carried],
        "parts": {p.name: sorted(w.name for w in p.iterdir()) for p in parts},
        "suite": sorted(w.name for w in (args.dest / "suite").glob("*.whl")),
    }
    (args.dest / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    sizes = ", ".join(f"{p.name} {sum(w.stat().st_size for w in p.iterdir()) / 2**20:.1f} MiB" for p in parts)
    print(f"{len(carried)} of {len(resolved)} distributions carried (+ the suite's wheel): {sizes}")


if __name__ == "__main__":
    main()
