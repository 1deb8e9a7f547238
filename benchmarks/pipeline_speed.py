"""Throughput of `fer-mine run` and of each of its stages alone, and peak memory at N and 4N.

    python -m benchmarks.pipeline_speed [--photos 40] [--size 1600x1200] [--detector yunet]
                                        [--detect-size 1280,640] [--workers 1,2,4,...,cores]
                                        [--precision auto|float32|int8]

Builds an archive of N JPEG photos (scenes with 0-5 pasted faces, EXIF times), then times:
decode only; decode + detect; the model alone on the face crops (batches of 64); the whole
Beam pipeline in this process (DirectRunner) and with each --workers count of worker processes. Each pipeline run
is a fresh child process so that its peak RSS is its own. Goals: the whole pipeline reaches
80% of its slowest stage alone; memory does not grow with N.
"""

from __future__ import annotations

import argparse
import json
import os
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
from benchmarks.scenes import write_archive
from fer_mine.amacnn.int8 import resolve_precision
from fer_mine.amacnn.model import class_probabilities
from fer_mine.amacnn.weights import load_model, read_card
from fer_mine.defaults import (
    DEFAULT_ALIGN,
    DEFAULT_DETECTOR,
    DEFAULT_MARGIN,
    DEFAULT_PRECISION,
    DEFAULT_TTA,
    DETECTORS,
    PRECISIONS,
)
from fer_mine.media.detect import DetectorSettings, FaceDetector, crop_face
from fer_mine.media.images import decode, find_images, read_bytes
from fer_mine.pipeline.run import RunSettings, run


def stage_rates(folder: Path, settings: DetectorSettings, precision: str) -> dict[str, tuple[float, float]]:
    files = find_images(str(folder))
    start = time.perf_counter()
    images = [decode(f, read_bytes(f)) for f in files]
    decode_s = time.perf_counter() - start
    detector = FaceDetector(settings)
    start = time.perf_counter()
    faces = [(img, detector.detect(img.pixels)) for img in images]
    detect_s = time.perf_counter() - start
    model, card = load_model(precision=precision)  # as `run` classifies on this machine
    crops = [card.preprocess.to_pixels(crop_face(img.pixels, f, DEFAULT_MARGIN, DEFAULT_ALIGN))
             for img, fs in faces for f in fs]  # fmt: skip
    n_faces = len(crops)
    start = time.perf_counter()
    tensor = card.preprocess.to_tensor(np.stack(crops)) if crops else None
    with torch.inference_mode():
        for i in range(0, n_faces, 64):
            class_probabilities(model, tensor[i : i + 64], tta=DEFAULT_TTA)  # as `run` classifies
    model_s = time.perf_counter() - start
    n = len(files)
    return {
        "decode only": (n / decode_s, n_faces / decode_s),
        "decode + detect": (n / (decode_s + detect_s), n_faces / (decode_s + detect_s)),
        "detect only": (n / detect_s, n_faces / detect_s),
        "model only (crops)": (n / model_s if model_s else 0, n_faces / model_s if model_s else 0),
    }


def run_precision(requested: str) -> str:
    return resolve_precision(requested, read_card(None)[0], "cpu")


def child(folder: str, out: str, workers: int, detector: str, sizes: str, precision: str) -> None:
    """Runs one pipeline in this (fresh) process and prints its figures as JSON."""
    detect_sizes = tuple(int(s) for s in sizes.split(",")) if sizes else None
    settings = RunSettings(inputs=[folder], output=out, workers=workers, precision=precision,
                           detector=DetectorSettings(detector, detect_sizes=detect_sizes))  # fmt: skip
    start = time.perf_counter()
    counts = run(settings)
    seconds = time.perf_counter() - start
    print(
        json.dumps(
            {
                "seconds": seconds,
                "images": counts["images"],
                "faces": counts["faces"],
                "rss_mb": peak_rss_mb(),
            }
        )
    )


def pipeline(folder: Path, workers: int, detector: str, sizes: str, precision: str) -> dict:
    with tempfile.TemporaryDirectory() as out:
        code = ("import sys; from benchmarks.pipeline_speed import child; "
                "child(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6])")  # fmt: skip
        done = subprocess.run([sys.executable, "-c", code, str(folder), out, str(workers), detector, sizes, precision],
                              capture_output=True, text=True, check=True, cwd=Path(__file__).parents[1])  # fmt: skip
        return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=40)
    parser.add_argument("--size", default="1600x1200")
    parser.add_argument("--detector", choices=DETECTORS, default=DEFAULT_DETECTOR)
    parser.add_argument("--detect-size", default="", help="default: the detector's own (fer-mine run --help)")
    cores = os.cpu_count() or 1
    counts = sorted({w for w in (1, 2, 4, 8, 16, 32, 64) if w <= cores} | {cores})
    parser.add_argument("--workers", default=",".join(map(str, counts)),
                        help="worker process counts of the pipeline rows (default: 1, 2, 4, ... and every core)")  # fmt: skip
    parser.add_argument("--precision", choices=PRECISIONS, default=DEFAULT_PRECISION,
                        help="the classifier's, as `fer-mine run --precision`")  # fmt: skip
    args = parser.parse_args()
    precision = run_precision(args.precision)
    width, height = map(int, args.size.split("x"))
    sizes = tuple(int(s) for s in args.detect_size.split(",")) if args.detect_size else None
    settings = DetectorSettings(args.detector, detect_sizes=sizes)
    console = Console(width=160)
    with tempfile.TemporaryDirectory() as tmp:
        small, large = Path(tmp) / "n", Path(tmp) / "4n"
        truth = write_archive(small, args.photos, seed=1, size=(width, height))
        write_archive(large, 4 * args.photos, seed=2, size=(width, height))
        sizes = ",".join(map(str, settings.sizes))
        console.print(f"archive: {args.photos} photos of {width}x{height}, {sum(map(len, truth.values()))} faces; "
                      f"detector {args.detector}@{sizes}; classifier {precision}; OpenCV {cv2.__version__}; torch threads "
                      f"{torch.get_num_threads()}; {os.cpu_count()} CPU cores")  # fmt: skip
        table = Table("measure", "images/s", "faces/s", "peak RSS MB", title="fer-mine run throughput")
        stages = stage_rates(small, settings, precision)
        for name, (ips, fps) in stages.items():
            table.add_row(name, f"{ips:.2f}", f"{fps:.2f}", "")
        slowest = min(
            v[0] for k, v in stages.items() if k in ("decode only", "detect only", "model only (crops)")
        )
        table.add_section()
        for label, folder in (("N", small), ("4N", large)):
            for workers in (int(w) for w in args.workers.split(",")):
                r = pipeline(folder, workers, args.detector, args.detect_size, precision)
                ips = r["images"] / r["seconds"]
                name = f"pipeline, {'in-process' if workers == 1 else f'{workers} workers'}, {label}"
                share = f" ({ips / slowest:.0%} of slowest stage)" if workers == 1 else ""
                table.add_row(
                    name + share, f"{ips:.2f}", f"{r['faces'] / r['seconds']:.2f}", f"{r['rss_mb']:.0f}"
                )
        console.print(table)


if __name__ == "__main__":
    main()
