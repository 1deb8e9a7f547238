"""Crowded photos: where the time of `fer-mine run` goes when every photo holds dozens of faces,
for each model (the default against the fast one), stage by stage and end to end.

    python -m benchmarks.crowded [--photos 30] [--rounds 3] [--size 1024x768]
                                 [--models amacnn-fer2013,amacnn-fer2013-fast]

Builds an archive of N group photos (benchmarks/scenes.py, `crowded`: 20-40 faces of 20-120 px
each, as many as find room). Per model, each stage alone, in this process, in the precision
`run` gives that model on this machine: decode, detect (the default YuNet passes), crop (framing,
alignment, quality columns), classify (batches of 64 faces, flip TTA as `run` does) and write
(the face records to Parquet). Then the whole `fer-mine run` per model, each a fresh process
timed from start to exit, the models interleaved over --rounds, with the median and each run's
time against the last model's in the same round (median of those ratios, so a machine's drift
between rounds cancels).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from rich.console import Console
from rich.table import Table

from benchmarks.scenes import write_archive
from fer_mine.amacnn.int8 import resolve_precision
from fer_mine.amacnn.model import class_probabilities
from fer_mine.amacnn.weights import load_model, read_card
from fer_mine.defaults import DEFAULT_ALIGN, DEFAULT_MARGIN, DEFAULT_PRECISION, DEFAULT_TTA
from fer_mine.media.detect import DetectorSettings, FaceDetector, crop_face
from fer_mine.media.images import decode, find_images, read_bytes
from fer_mine.media.quality import face_quality
from fer_mine.records.schema import SCHEMAS

STAGES = ("decode", "detect", "crop", "classify", "write")


def stage_seconds(folder: Path, model_name: str, faces_table: pa.Table) -> dict[str, float]:
    """Seconds of each stage over the whole archive, as `run` does it in one worker."""
    card, _ = read_card(model_name)
    precision = resolve_precision(DEFAULT_PRECISION, card, "cpu")
    model, card = load_model(model_name, precision=precision)
    seconds = {}
    start = time.perf_counter()
    images = [decode(f, read_bytes(f)) for f in find_images(str(folder))]
    seconds["decode"] = time.perf_counter() - start
    detector = FaceDetector(DetectorSettings())
    start = time.perf_counter()
    found = [(image, detector.detect(image.pixels)) for image in images]
    seconds["detect"] = time.perf_counter() - start
    start = time.perf_counter()
    crops = []
    for image, faces in found:
        for face in faces:
            crop = card.preprocess.to_pixels(crop_face(image.pixels, face, DEFAULT_MARGIN, DEFAULT_ALIGN))
            face_quality(crop, face.w, face.h, face.landmarks)
            crops.append(crop)
    seconds["crop"] = time.perf_counter() - start
    start = time.perf_counter()
    if crops:
        tensor = card.preprocess.to_tensor(np.stack(crops)).contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            class_probabilities(model, tensor[:64], DEFAULT_TTA, card.temperature(DEFAULT_TTA))  # warm-up
            if hasattr(model, "refined"):  # count the timed faces only
                model.refined = model.seen = 0
            start = time.perf_counter()
            for i in range(0, len(tensor), 64):
                class_probabilities(model, tensor[i : i + 64], DEFAULT_TTA, card.temperature(DEFAULT_TTA))
    seconds["classify"] = time.perf_counter() - start
    rows = faces_table.to_pylist()
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMAS["faces"]), Path(tmp) / "faces.parquet")
        seconds["write"] = time.perf_counter() - start
    seconds["faces"] = len(crops)
    # int8 with close calls in float32: the share of faces classified twice (warm-up batch aside)
    refined = getattr(model, "refined", None)
    seconds["precision"] = precision + (
        f", {refined} of {len(crops)} faces again in float32" if refined is not None else ""
    )
    return seconds


def timed_run(photos: Path, output: Path, model: str) -> float:
    """Seconds of one `fer-mine run --model M`, a fresh process from start to exit."""
    command = [sys.executable, "-c", "from fer_mine.cli import main; main()", "run", "--input", str(photos),
               "--output", str(output), "--model", model]  # fmt: skip
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"fer-mine run --model {model} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--size", default="1024x768", help="WxH of each photo")
    parser.add_argument("--models", default="amacnn-fer2013,amacnn-fer2013-fast",
                        help="comma-separated; the last is what the others are measured against")  # fmt: skip
    args = parser.parse_args()
    models = args.models.split(",")
    width, height = map(int, args.size.split("x"))
    console = Console(width=160)
    with tempfile.TemporaryDirectory() as tmp:
        photos = Path(tmp) / "photos"
        write_archive(photos, args.photos, seed=5, size=(width, height), crowded=True)
        runs: dict[str, list[float]] = {m: [] for m in models}
        faces_table = None
        for r in range(args.rounds):
            for i, model in enumerate(models):
                output = Path(tmp) / f"out-{r}-{i}"
                runs[model].append(timed_run(photos, output, model))
                if faces_table is None:
                    faces_table = pq.read_table(output / "faces")
                shutil.rmtree(output)
        stages = {model: stage_seconds(photos, model, faces_table) for model in models}
    n = args.photos
    faces = stages[models[0]]["faces"]
    console.print(f"{n} crowded photos of {width}x{height}, {faces} faces found ({faces / n:.1f} a photo); "
                  f"{os.cpu_count()} CPU cores; torch {torch.__version__}")  # fmt: skip
    table = Table("model (precision)", *(f"{s} ms/photo" for s in STAGES), "stages summed",
                  title="each stage alone, one worker, ms per photo")  # fmt: skip
    for model, s in stages.items():
        table.add_row(f"{model} ({s['precision']})", *(f"{1000 * s[k] / n:.1f}" for k in STAGES),
                      f"{1000 * sum(s[k] for k in STAGES) / n:.1f}")  # fmt: skip
    console.print(table)
    last = runs[models[-1]]
    table = Table("model", "median s", "ms/photo", f"x {models[-1]} (median of rounds)", "each round, s",
                  title=f"fer-mine run end to end (fresh process each), {args.rounds} interleaved rounds")  # fmt: skip
    for model, times in runs.items():
        ratio = statistics.median(t / b for t, b in zip(times, last, strict=True))
        table.add_row(model, f"{statistics.median(times):.2f}", f"{1000 * statistics.median(times) / n:.0f}",
                      f"{ratio:.3f}", " ".join(f"{t:.1f}" for t in times))  # fmt: skip
    console.print(table)


if __name__ == "__main__":
    main()
