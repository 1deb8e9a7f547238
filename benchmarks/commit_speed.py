"""`fer-mine run` of this working tree against another commit's, on one archive, interleaved.

    python -m benchmarks.commit_speed --baseline COMMIT [--photos 40] [--rounds 5]
                                      [--kind scenes|portraits]
                                      [--variant=--people] [--run-args="--workers 1"]

Answers "does this change cost time?": the baseline commit is checked out in a temporary git
worktree, and each round runs `fer-mine run` on the same synthetic archive (scenes of 1600x1200
with 0-5 faces, benchmarks/scenes.py, or one-face portraits of 256x256) from the baseline, from this tree, and from this tree with
each --variant's extra arguments, in that order, each into a fresh output and timed from process
start to exit. The table gives the medians and each row's time against the baseline's in the
same round (median of those ratios), so that a machine's drift between rounds cancels.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq
from rich.console import Console
from rich.table import Table

from benchmarks.pipeline_speed import write_portraits
from benchmarks.scenes import write_archive

ROOT = Path(__file__).resolve().parents[1]


def timed_run(tree: Path, photos: Path, output: Path, extra: list[str]) -> float:
    """Seconds of one `fer-mine run` whose package is the one in `tree`, start to exit."""
    # `tree` holds the package as fer_mine/: first on the path, it wins over the installed one
    env = os.environ | {"PYTHONPATH": str(tree)}
    command = [sys.executable, "-c", "from fer_mine.cli import main; main()", "run", "--input", str(photos),
               "--output", str(output), *extra]  # fmt: skip
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=tree)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"fer-mine run failed in {tree}:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return seconds


def rows_in(output: Path, table: str) -> int:
    from fer_mine.records import pieces

    return sum(pq.read_metadata(path).num_rows for path in pieces.table_files(str(output), (table,))[table])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", required=True, help="a commit (hash, tag, HEAD~3)")
    parser.add_argument("--photos", type=int, default=40)
    parser.add_argument("--kind", choices=("scenes", "portraits"), default="scenes")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--variant", action="append", default=[],
                        help="extra `run` arguments for one more row of this tree (repeatable)")  # fmt: skip
    parser.add_argument("--run-args", default="", help="arguments every run gets")
    args = parser.parse_args()
    common = shlex.split(args.run_args)
    commit = subprocess.run(["git", "rev-parse", "--short", args.baseline], cwd=ROOT, capture_output=True,
                            text=True, check=True).stdout.strip()  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        base, here = Path(tmp) / "base", Path(tmp) / "here"
        subprocess.run(["git", "worktree", "add", "--detach", str(base / "fer_mine"), commit], cwd=ROOT,
                       capture_output=True, check=True)  # fmt: skip
        here.mkdir()
        (here / "fer_mine").symlink_to(ROOT)
        try:
            photos = Path(tmp) / "photos"
            if args.kind == "portraits":
                write_portraits(photos, args.photos, 256, seed=1)
            else:
                write_archive(photos, args.photos, seed=1, size=(1600, 1200))
            rows = {f"{commit} (baseline)": (base, common), "this tree": (here, common)}
            rows |= {f"this tree {v}": (here, [*common, *shlex.split(v)]) for v in args.variant}
            seconds: dict[str, list[float]] = {name: [] for name in rows}
            written: dict[str, tuple[int, int]] = {}
            for r in range(args.rounds):
                for i, (name, (tree, extra)) in enumerate(rows.items()):
                    output = Path(tmp) / f"out-{r}-{i}"
                    seconds[name].append(timed_run(tree, photos, output, extra))
                    written[name] = rows_in(output, "faces"), rows_in(output, "embeddings")
                    shutil.rmtree(output)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(base / "fer_mine")], cwd=ROOT,
                           capture_output=True)  # fmt: skip
    baseline = seconds[f"{commit} (baseline)"]
    table = Table("run", "faces", "embeddings", "median s", "x baseline (median of rounds)", "each round, s",
                  title=f"fer-mine run on {args.photos} {'portraits of 256x256' if args.kind == 'portraits' else 'scenes of 1600x1200'}, {args.rounds} interleaved rounds; "
                        f"{os.cpu_count()} CPU cores; run args: {args.run_args or '(none)'}")  # fmt: skip
    for name, times in seconds.items():
        ratio = statistics.median(t / b for t, b in zip(times, baseline, strict=True))
        table.add_row(
            name,
            *map(str, written[name]),
            f"{statistics.median(times):.2f}",
            f"{ratio:.3f}",
            " ".join(f"{t:.1f}" for t in times),
        )
    Console(width=160).print(table)


if __name__ == "__main__":
    main()
