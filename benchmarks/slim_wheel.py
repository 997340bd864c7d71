"""Rewrite a wheel without some of its folders, so a carry set fits the device tool's 64 MiB.

Why: ``inspect_ai``'s wheel (35 MB) is mostly ``inspect_ai/binaries/`` (sandbox tool binaries, unused by
a local ``inspect eval``). The wheel is rewritten in place with those entries and their ``RECORD`` lines
gone; every other entry (and its hash line) is copied unchanged, so pip installs it as before.

    python3 benchmarks/slim_wheel.py .whl-inspect/inspect_ai-*.whl inspect_ai/binaries/
"""

from __future__ import annotations

import argparse
import os
import zipfile
from pathlib import Path


def slim(wheel: Path, prefixes: list[str]) -> int:
    """Drop the entries under ``prefixes`` from ``wheel`` (rewritten in place); returns how many."""
    prefixes = [p.rstrip("/") + "/" for p in prefixes]
    kept = wheel.with_name(wheel.name + ".partial")
    dropped = 0
    with zipfile.ZipFile(wheel) as source, zipfile.ZipFile(kept, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            if any(info.filename.startswith(prefix) for prefix in prefixes):
                dropped += 1
                continue
            data = source.read(info)
            if info.filename.endswith(".dist-info/RECORD"):
                lines = data.decode().splitlines(keepends=True)
                data = "".join(line for line in lines if not line.startswith(tuple(prefixes))).encode()
            target.writestr(info, data)
    os.replace(kept, wheel)
    return dropped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wheel", type=Path)
    parser.add_argument("prefixes", nargs="+", help="folders inside the wheel to drop (e.g. pkg/binaries/)")
    args = parser.parse_args()
    before = args.wheel.stat().st_size
    dropped = slim(args.wheel, args.prefixes)
    if not dropped:
        raise SystemExit(f"{args.wheel}: nothing under {args.prefixes}")
    print(
        f"{args.wheel.name}: {dropped} entries dropped, {before / 2**20:.1f} -> {args.wheel.stat().st_size / 2**20:.1f} MiB"
    )


if __name__ == "__main__":
    main()
