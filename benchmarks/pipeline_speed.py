"""Throughput of `fer-mine run` and of each of its stages alone, per worker count and mode.

    python -m benchmarks.pipeline_speed [--photos 40] [--kind scenes|portraits] [--size 1600x1200]
                                        [--detector yunet] [--detect-size 1280,640]
                                        [--workers auto,1,2,4,...,cores] [--modes threads,processes]
                                        [--rounds 1] [--precision auto|float32|int8] [--no-4n]
                                        [--people]

Builds an archive of N JPEG photos (scenes with 0-5 pasted faces and EXIF times, or one-face
portraits), then times: decode only; detect only; crop; the model alone on the face crops
(batches of 64); their sum; the whole Beam pipeline in this process (DirectRunner) and with each
--workers count in each mode, and `auto` (what plain `fer-mine run` chooses). Each pipeline run
is a fresh child process, timed from its start to its exit (imports included, as a user waits),
so that its peak RSS is its own; with --rounds R the rows are interleaved R times and the median
shown. With --people every pipeline row is also run with `--people` (a face embedding per face),
interleaved with its plain twin. Goals: the pipeline in-process within 1.1x of the summed stages;
more workers, more photos/s; memory that does not grow with N (the 4N rows).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from benchmarks.memory import peak_rss_mb
from benchmarks.scenes import portrait, save_jpeg, write_archive
from fer_mine.amacnn.int8 import resolve_precision
from fer_mine.amacnn.model import class_probabilities
from fer_mine.amacnn.weights import load_model, read_card
from fer_mine.defaults import (
    AUTO_WORKERS,
    DEFAULT_ALIGN,
    DEFAULT_DETECTOR,
    DEFAULT_MARGIN,
    DEFAULT_PRECISION,
    DEFAULT_TTA,
    DETECTORS,
    PRECISIONS,
    WORKER_MODES,
)
from fer_mine.media.detect import DetectorSettings, FaceDetector, crop_face
from fer_mine.media.images import decode, find_images, read_bytes
from fer_mine.media.quality import head_pose
from fer_mine.people.embed import embed, embeddable, face_chip, load_embedder
from fer_mine.pipeline.plan import plan_run
from fer_mine.pipeline.run import run
from fer_mine.pipeline.settings import RunSettings


def stage_rates(
    folder: Path, settings: DetectorSettings, precision: str, people: bool = False
) -> dict[str, tuple[float, float]]:
    files = find_images(str(folder))
    start = time.perf_counter()
    images = [decode(f, read_bytes(f)) for f in files]
    decode_s = time.perf_counter() - start
    detector = FaceDetector(settings)
    start = time.perf_counter()
    faces = [(img, detector.detect(img.pixels)) for img in images]
    detect_s = time.perf_counter() - start
    model, card = load_model(precision=precision)  # as `run` classifies on this machine
    start = time.perf_counter()
    crops = [card.preprocess.to_pixels(crop_face(img.pixels, f, DEFAULT_MARGIN, DEFAULT_ALIGN))
             for img, fs in faces for f in fs]  # fmt: skip
    crop_s = time.perf_counter() - start
    n_faces = len(crops)
    start = time.perf_counter()
    tensor = card.preprocess.to_tensor(np.stack(crops)) if crops else None
    with torch.inference_mode():
        for i in range(0, n_faces, 64):
            class_probabilities(model, tensor[i : i + 64], tta=DEFAULT_TTA)  # as `run` classifies
    model_s = time.perf_counter() - start
    n = len(files)
    embedding = {}
    if people:  # as `run --people`: a chip and an embedding for each face big and frontal enough
        embedder = load_embedder()
        start = time.perf_counter()
        chips = [face_chip(img.pixels, f.landmarks) for img, fs in faces for f in fs
                 if embeddable(f, head_pose(f.landmarks)[0])]  # fmt: skip
        if chips:
            embed(np.stack(chips), embedder)
        seconds = time.perf_counter() - start
        embedding = {f"embedding only ({len(chips)} chips)": (n / seconds, n_faces / seconds)}
    return {
        "decode only": (n / decode_s, n_faces / decode_s),
        "decode + detect": (n / (decode_s + detect_s), n_faces / (decode_s + detect_s)),
        "detect only": (n / detect_s, n_faces / detect_s),
        "model only (crops)": (n / model_s if model_s else 0, n_faces / model_s if model_s else 0),
        "stages summed (decode, detect, crop, model)": (
            n / (decode_s + detect_s + crop_s + model_s),
            n_faces / (decode_s + detect_s + crop_s + model_s),
        ),
    } | embedding


def run_precision(requested: str) -> str:
    return resolve_precision(requested, read_card(None)[0], "cpu")


def child(
    folder: str, out: str, workers: str, mode: str, detector: str, sizes: str, precision: str, people: str
) -> None:
    """Runs one pipeline in this (fresh) process and prints its figures as JSON."""
    detect_sizes = tuple(int(s) for s in sizes.split(",")) if sizes else None
    settings = RunSettings(inputs=[folder], output=out, precision=precision, worker_mode=mode, people=people == "1",
                           workers=None if workers == AUTO_WORKERS else int(workers),
                           detector=DetectorSettings(detector, detect_sizes=detect_sizes))  # fmt: skip
    start = time.perf_counter()
    plan = plan_run(settings)
    counts = run(settings, plan)
    print(json.dumps({"images": counts["images"], "faces": counts["faces"], "rss_mb": peak_rss_mb(),
                      "workers": plan.workers, "mode": plan.worker_mode,
                      "pipeline_seconds": time.perf_counter() - start}))  # fmt: skip


def pipeline(
    folder: Path, workers: str, mode: str, detector: str, sizes: str, precision: str, people: bool
) -> dict:
    """One run in a fresh process, timed from its start to its exit."""
    with tempfile.TemporaryDirectory() as out:
        code = "import sys; from benchmarks.pipeline_speed import child; child(*sys.argv[1:])"
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", code, str(folder), out, workers, mode, detector, sizes, precision,
                               str(int(people))],
                              capture_output=True, text=True, check=True, cwd=Path(__file__).parents[1])  # fmt: skip
        seconds = time.perf_counter() - start
        return json.loads(done.stdout.strip().splitlines()[-1]) | {"seconds": seconds}


def write_portraits(folder: Path, count: int, side: int, seed: int) -> None:
    """`count` one-face close-ups of side x side pixels, in five folders."""
    rng = np.random.default_rng(seed)
    for i in range(count):
        image = cv2.resize(portrait(rng, side).image, (side, side), interpolation=cv2.INTER_AREA)
        save_jpeg(image, folder / f"set-{i % 5}" / f"portrait-{i:05d}.jpg")


def runs(args) -> list[tuple[str, str, bool]]:
    """(workers, mode, people) of each pipeline row: auto, in-process, then each count in each mode;
    with --people each twice, without and with embeddings."""
    rows = []
    for workers in args.workers.split(","):
        modes = ["threads"] if workers in (AUTO_WORKERS, "1") else args.modes.split(",")
        rows += [(workers, mode, people) for mode in modes for people in (False, True)[: 1 + args.people]]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=40)
    parser.add_argument("--kind", choices=("scenes", "portraits"), default="scenes")
    parser.add_argument("--size", default="", help="WxH (default: 1600x1200 scenes, 256x256 portraits)")
    parser.add_argument("--detector", choices=DETECTORS, default=DEFAULT_DETECTOR)
    parser.add_argument("--detect-size", default="", help="default: the detector's own (fer-mine run --help)")
    cores = os.cpu_count() or 1
    counts = sorted({w for w in (1, 2, 4, 8, 16, 32, 64) if w <= cores} | {cores})
    parser.add_argument("--workers", default=",".join([AUTO_WORKERS, *map(str, counts)]),
                        help="pipeline rows: auto and worker counts (default: auto, 1, 2, 4, ... and every core)")  # fmt: skip
    parser.add_argument(
        "--modes", default=",".join(WORKER_MODES), help="worker modes of the rows with 2+ workers"
    )
    parser.add_argument("--rounds", type=int, default=1, help="interleaved repeats; the median is shown")
    parser.add_argument("--no-4n", dest="four_n", action="store_false", help="leave out the 4N memory rows")
    parser.add_argument("--people", action="store_true", help="each pipeline row also with `run --people`")
    parser.add_argument("--precision", choices=PRECISIONS, default=DEFAULT_PRECISION,
                        help="the classifier's, as `fer-mine run --precision`")  # fmt: skip
    args = parser.parse_args()
    precision = run_precision(args.precision)
    width, height = map(
        int, (args.size or ("256x256" if args.kind == "portraits" else "1600x1200")).split("x")
    )
    sizes = tuple(int(s) for s in args.detect_size.split(",")) if args.detect_size else None
    settings = DetectorSettings(args.detector, detect_sizes=sizes)
    console = Console(width=160)
    with tempfile.TemporaryDirectory() as tmp:
        archives = {"N": Path(tmp) / "n", "4N": Path(tmp) / "4n"}
        for (label, folder), seed in zip(archives.items(), (1, 2), strict=True):
            count = args.photos * (4 if label == "4N" else 1)
            if label == "4N" and not args.four_n:
                continue
            if args.kind == "portraits":
                write_portraits(folder, count, width, seed)
            else:
                write_archive(folder, count, seed=seed, size=(width, height))
        console.print(f"archive: {args.photos} {args.kind} of {width}x{height}; detector {args.detector}@"
                      f"{','.join(map(str, settings.sizes))}; classifier {precision}; OpenCV {cv2.__version__}; "
                      f"torch threads {torch.get_num_threads()}; {cores} CPU cores; {args.rounds} round(s), median")  # fmt: skip
        table = Table(
            "measure",
            "images/s",
            "faces/s",
            "time / in-process",
            "peak RSS MB",
            title="fer-mine run throughput (each run timed from process start to exit)",
        )
        stages = stage_rates(archives["N"], settings, precision, args.people)
        for name, (ips, fps) in stages.items():
            table.add_row(name, f"{ips:.2f}", f"{fps:.2f}", "", "")
        summed = stages["stages summed (decode, detect, crop, model)"][0]
        table.add_section()
        for label, folder in archives.items():
            if label == "4N" and not args.four_n:
                continue
            measured: dict[tuple[str, str, bool], list[dict]] = {row: [] for row in runs(args)}
            for _ in range(args.rounds):
                for workers, mode, people in measured:
                    measured[(workers, mode, people)].append(
                        pipeline(folder, workers, mode, args.detector, args.detect_size, precision, people)
                    )
            in_process = measured.get(("1", "threads", False), [{"seconds": 0}])
            base = statistics.median(r["seconds"] for r in in_process)
            for (workers, mode, people), rs in measured.items():
                seconds = statistics.median(r["seconds"] for r in rs)
                ips, fps = rs[0]["images"] / seconds, rs[0]["faces"] / seconds
                chosen = f" ({rs[0]['workers']} {rs[0]['mode']})" if workers == AUTO_WORKERS else ""
                name = (
                    "in-process"
                    if workers == "1"
                    else f"{workers}{chosen}"
                    if workers == AUTO_WORKERS
                    else f"{workers} {mode}"
                )
                # the pipeline alone (imports and start-up aside) against the summed stages
                alone = statistics.median(r["pipeline_seconds"] for r in rs)
                share = (
                    f"; {seconds and rs[0]['images'] / alone / summed:.0%} of the summed stages"
                    if workers == "1" and not people
                    else ""
                )
                name += " + --people" if people else ""
                table.add_row(f"pipeline, {name}, {label}{share}", f"{ips:.2f}", f"{fps:.2f}",
                              f"{seconds / base:.2f}" if base else "", f"{max(r['rss_mb'] for r in rs):.0f}")  # fmt: skip
        console.print(table)


if __name__ == "__main__":
    main()
