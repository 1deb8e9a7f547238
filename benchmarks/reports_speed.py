"""Time every report on a synthetic archive of N face records (default 1,000,000).

    python -m benchmarks.reports_speed [--faces 1000000] [--repeats 3]

Builds `faces`, `images`, `errors` Parquet tables with the real schema (0-8 faces per image,
300 folders, EXIF times over 3 years, 5% without one), then runs each report through the
same code path as `fer-mine report` and prints the median wall time. Goal: each under 2 s.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from rich.console import Console
from rich.table import Table

from fer_mine.labels import EMOTIONS
from fer_mine.records.schema import SCHEMAS
from fer_mine.reports.archive import Archive
from fer_mine.reports.registry import REPORTS

MODEL = "f" * 64


def _table(name: str, rows: int, columns: dict) -> pa.Table:
    """The table with the real schema; columns not given are what photos without landmarks or
    video frames hold: null, or False where the schema allows no null."""
    schema = SCHEMAS[name]
    for field in schema:
        if field.name not in columns:
            columns[field.name] = pa.nulls(rows, field.type) if field.nullable else np.zeros(rows, bool)
    return pa.table(columns, schema=schema)


def build(out: Path, n_faces: int, seed: int = 0) -> tuple[int, int]:
    rng = np.random.default_rng(seed)
    per_image = rng.choice(9, size=n_faces, p=[0.12, 0.38, 0.2, 0.1, 0.08, 0.05, 0.03, 0.02, 0.02])
    per_image = per_image[np.cumsum(per_image) <= n_faces]
    n_images = len(per_image)
    folder = rng.integers(0, 300, n_images)
    seconds = rng.integers(0, 3 * 365 * 86400, n_images)
    taken = (np.datetime64("2022-01-01T00:00:00") + seconds.astype("timedelta64[s]")).astype("datetime64[us]")
    untimed = rng.random(n_images) < 0.05
    paths = np.char.add(
        np.char.add(np.char.add("f", folder.astype(str)), "/img"), np.arange(n_images).astype(str)
    )
    paths = np.char.add(paths, ".jpg")
    now = datetime.now(timezone.utc)
    common = {"run_id": np.full(n_images, "bench"), "path": paths, "uri": np.char.add("/photos/", paths),
              "folder": np.char.add("f", folder.astype(str))}  # fmt: skip
    taken_col = pa.array(taken, mask=untimed)
    images = _table("images", n_images, {**common, "sha256": np.full(n_images, "s" * 64), "width": np.full(n_images, 4000, np.int32),
                       "height": np.full(n_images, 3000, np.int32), "format": np.full(n_images, "JPEG"),
                       "taken_at": taken_col, "face_count": per_image.astype(np.int32),
                       "detector": np.full(n_images, "ssd"), "model_sha256": np.full(n_images, MODEL),
                       "tta": np.full(n_images, True), "precision": np.full(n_images, "int8"),
                       "processed_at": pa.array([now] * n_images, pa.timestamp("us", tz="UTC"))})  # fmt: skip
    owner = np.repeat(np.arange(n_images), per_image)
    n = len(owner)
    # per-folder emotion mixes so that the folder report has something to rank
    logits = rng.normal(0, 1, (300, len(EMOTIONS)))[folder[owner]] + rng.normal(0, 1.5, (n, len(EMOTIONS)))
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    top = probs.argmax(1)
    faces = _table("faces", n, {
        **{k: np.asarray(v)[owner] for k, v in common.items()}, "image_sha256": np.full(n, "s" * 64),
        "taken_at": taken_col.take(pa.array(owner)), "face_index": (np.arange(n) - np.repeat(np.cumsum(per_image) - per_image, per_image)).astype(np.int32),
        "box_x": rng.integers(0, 3000, n, dtype=np.int32), "box_y": rng.integers(0, 2000, n, dtype=np.int32),
        "box_w": rng.integers(30, 400, n, dtype=np.int32), "box_h": rng.integers(30, 400, n, dtype=np.int32),
        "detector": np.full(n, "ssd"), "detector_score": rng.uniform(0.6, 1, n).astype(np.float32),
        "face_px": rng.integers(20, 400, n, dtype=np.int32), "sharpness": rng.uniform(50, 2000, n).astype(np.float32),
        "yaw_deg": rng.normal(0, 15, n).astype(np.float32), "roll_deg": rng.normal(0, 8, n).astype(np.float32),
        "emotion": np.array(EMOTIONS)[top], "confidence": probs.max(1).astype(np.float32),
        "uncertain": probs.max(1) < 0.5,
        **{f"p_{e}": probs[:, i].astype(np.float32) for i, e in enumerate(EMOTIONS)},
        "model_name": np.full(n, "bench"), "model_sha256": np.full(n, MODEL), "tta": np.full(n, True),
        "precision": np.full(n, "int8"),
        "processed_at": pa.array([now] * n, pa.timestamp("us", tz="UTC")),
    })  # fmt: skip
    errors = pa.Table.from_pylist(
        [{"run_id": "bench", "path": f"bad{i}.jpg", "uri": f"/photos/bad{i}.jpg", "folder": "", "stage": "decode",
          "kind": ["corrupt", "empty_file", "not_an_image"][i % 3], "message": "x", "model_sha256": MODEL,
          "processed_at": now} for i in range(500)], schema=SCHEMAS["errors"])  # fmt: skip
    for name, table in (("faces", faces), ("images", images), ("errors", errors)):
        (out / name).mkdir(parents=True)
        pq.write_table(table, out / name / "bench-00000.parquet", row_group_size=256_000)
    return n, n_images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        start = time.perf_counter()
        n_faces, n_images = build(out, args.faces)
        built = time.perf_counter() - start
        table = Table("report", "rows", "median s", "min s", "under 2 s",
                      title=f"{n_faces:,} faces in {n_images:,} images (built in {built:.1f} s)")  # fmt: skip
        archive = Archive(out)
        for name in REPORTS:
            times, rows = [], 0
            for _ in range(args.repeats):
                t = time.perf_counter()
                rows = len(archive.report(name).rows)
                times.append(time.perf_counter() - t)
            median = statistics.median(times)
            table.add_row(
                name, str(rows), f"{median:.3f}", f"{min(times):.3f}", "yes" if median < 2 else "NO"
            )
        Console(width=200).print(table)


if __name__ == "__main__":
    main()
