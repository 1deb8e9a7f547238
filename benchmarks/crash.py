"""What a crash costs: `fer-mine run` killed part-way, then run again; and reports over an output
left in many pieces against the same output in one.

    python -m benchmarks.crash [--photos 850] [--at 0.7] [--pieces 1000] [--rounds 3]

Builds N one-face portraits (256x256, benchmarks/pipeline_speed.py's), times an uninterrupted
`fer-mine run` (a fresh process, start to exit), then starts the same run into a new output and
kills it with SIGKILL at --at of that time. The rerun's summary says how many files the killed
run had committed; the table gives that share, the rerun's time, and whether the output then
holds exactly the uninterrupted run's images and faces with no face twice. Then the
uninterrupted output is cut into --pieces committed pieces (records/pieces.py) and every report
is timed over both (`fer-mine report --format csv`, a fresh process each, interleaved rounds,
medians).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
from rich.console import Console
from rich.table import Table

from benchmarks.pipeline_speed import write_portraits
from fer_mine.records import pieces, store

CLI = [sys.executable, "-c", "from fer_mine.cli import main; main()"]


def rows(output: Path, table: str) -> pa.Table:
    files = pieces.table_files(str(output), (table,))[table]
    return pa.concat_tables([store.read_table(f) for f in files])


def timed(command: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{' '.join(command[3:])} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return seconds, done.stdout + done.stderr  # the plan's line goes to stderr


def split_into_pieces(source: Path, target: Path, count: int) -> None:
    """`source`'s committed records as `count` pieces of consecutive images (their faces with them)."""
    images, faces = rows(source, "images"), rows(source, "faces")
    uris = images["uri"].to_pylist()
    for part, chosen in enumerate(np.array_split(np.arange(len(uris)), count)):
        if not len(chosen):
            continue
        mine = pa.array([uris[i] for i in chosen])
        tables = {"images": images.take(pa.array(chosen)),
                  "faces": faces.filter(pa.compute.is_in(faces["uri"], mine))}  # fmt: skip
        pieces.write_piece(str(target), f"20261207T000000Z-000000-p{part:016x}", tables)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=850)
    parser.add_argument("--at", type=float, default=0.7, help="kill at this share of the uninterrupted time")
    parser.add_argument("--pieces", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    console = Console(width=160)
    with tempfile.TemporaryDirectory() as tmp:
        photos, whole, killed = Path(tmp) / "photos", Path(tmp) / "whole", Path(tmp) / "killed"
        write_portraits(photos, args.photos, 256, seed=1)
        run = [*CLI, "run", "--quiet", "--input", str(photos), "--output"]
        uninterrupted, _ = timed([*run, str(whole)])
        proc = subprocess.Popen([*run, str(killed)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(args.at * uninterrupted)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        rerun, said = timed([*CLI, "run", "--input", str(photos), "--output", str(killed)])
        recorded = int(re.search(r"(\d+)\s+already\s+recorded", said).group(1))
        same = all(
            sorted(rows(killed, t).select(["uri", *(["face_index"] if t == "faces" else [])]).to_pylist(),
                   key=str)
            == sorted(rows(whole, t).select(["uri", *(["face_index"] if t == "faces" else [])]).to_pylist(),
                      key=str)
            for t in ("images", "faces")
        )  # fmt: skip
        keys = rows(killed, "faces").select(["uri", "frame_index", "face_index"]).to_pylist()
        twice = len(keys) - len({tuple(k.values()) for k in keys})
        table = Table("measure", "value", title=f"SIGKILL at {args.at:.0%} of an uninterrupted run over "
                      f"{args.photos} portraits; {os.cpu_count()} CPU cores")  # fmt: skip
        table.add_row("uninterrupted run", f"{uninterrupted:.1f} s")
        table.add_row("killed at", f"{args.at * uninterrupted:.1f} s")
        table.add_row(
            "files already recorded at the rerun",
            f"{recorded} of {args.photos} ({recorded / args.photos:.0%})",
        )
        table.add_row("rerun", f"{rerun:.1f} s ({rerun / uninterrupted:.2f}x the uninterrupted run)")
        table.add_row("after the rerun: the uninterrupted run's images and faces", "yes" if same else "NO")
        table.add_row("faces recorded twice", str(twice))
        console.print(table)

        many = Path(tmp) / "many"
        split_into_pieces(whole, many, args.pieces)
        shutil.rmtree(killed)
        seconds: dict[str, list[float]] = {"1 piece": [], f"{args.pieces} pieces": []}
        for _ in range(args.rounds):
            for name, output in (("1 piece", whole), (f"{args.pieces} pieces", many)):
                seconds[name].append(timed([*CLI, "report", str(output), "--format", "csv"])[0])
    files = {name: n for name, n in (("1 piece", 1), (f"{args.pieces} pieces", args.pieces))}
    table = Table("output", "files per table", "fer-mine report (all reports), median s", "x 1 piece",
                  title=f"reports over the same {args.photos} portraits' records, {args.rounds} interleaved rounds")  # fmt: skip
    base = statistics.median(seconds["1 piece"])
    for name, times in seconds.items():
        table.add_row(
            name,
            str(files[name]),
            f"{statistics.median(times):.2f}",
            f"{statistics.median(times) / base:.2f}",
        )
    console.print(table)


if __name__ == "__main__":
    main()
