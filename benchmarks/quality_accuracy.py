"""Accuracy of `fer-mine run` by face quality: which faces the `quality` score should leave out.

    python -m benchmarks.quality_accuracy [--data-root ../shared/data] [--faces 1500] [--split val]

The in-scene benchmark (`pipeline_accuracy`: labelled FER-2013 faces pasted into 1024x768
synthetic photos) with the damage real archives have: faces from 14 to 190 pixels, a third
of them blurred (Gaussian, sigma up to 2.5 px of the 48x48 original), half rotated by up to
+-40 degrees, photos saved at JPEG quality 30 to 95. Runs the real `fer-mine run` with its
defaults, matches each found face to its truth, and prints accuracy per bucket of each quality
column and of the combined `quality` score, with the share of faces each bucket holds.
The faces come from the default model's validation split unless --split PrivateTest.
Skips with a message when FER-2013 is absent (a fresh machine).
"""

from __future__ import annotations

import argparse
import itertools
import json
import tempfile
from pathlib import Path

import cv2
import numpy as np
from rich.console import Console
from rich.table import Table

from benchmarks.accuracy import DEFAULT_ROOT
from benchmarks.pipeline_accuracy import PHOTO, faces_of, mine, place
from benchmarks.scenes import _background
from fer_mine.reports.archive import Archive
from fer_mine.reports.params import ReportParams


def damaged_paste(photo: np.ndarray, face: np.ndarray, rng: np.random.Generator, taken: list) -> tuple | None:
    """Paste one face at a random size, maybe blurred and rotated; its (cx, cy, side)."""
    if rng.random() < 1 / 3:
        face = cv2.GaussianBlur(face, (0, 0), float(rng.uniform(0.8, 2.5)))
    side = int(rng.uniform(14, 190))
    big = cv2.cvtColor(cv2.resize(face, (side, side), interpolation=cv2.INTER_AREA if side < 48 else cv2.INTER_CUBIC),
                       cv2.COLOR_GRAY2BGR)  # fmt: skip
    angle = float(rng.uniform(-40, 40)) if rng.random() < 0.5 else 0.0
    return place(photo, big, angle, rng, taken)


def build(folder: Path, faces: np.ndarray, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    truth, index, number = [], 0, 0
    folder.mkdir(parents=True, exist_ok=True)
    while index < len(faces):
        photo, taken, name = _background(rng, *PHOTO), [], f"p{number:05d}.jpg"
        for _ in range(int(rng.integers(1, 6))):
            if index >= len(faces):
                break
            placed = damaged_paste(photo, faces[index], rng, taken)
            if placed:
                truth.append(
                    {"face": index, "path": name, "cx": placed[0], "cy": placed[1], "side": placed[2]}
                )
            index += 1  # a face with no room is skipped, not retried
        cv2.imwrite(str(folder / name), photo, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(30, 96))])
        number += 1
    return truth


def matched(output: Path, truth: list[dict], labels: np.ndarray, names: tuple) -> list[dict]:
    """Each found true face's row (quality columns, as the reports see them) and whether it is right."""
    archive = Archive(output, ReportParams(min_quality=0.0))  # every face: the benchmark chooses the cut
    result = archive.query(
        "SELECT path, box_x + box_w / 2 AS cx, box_y + box_h / 2 AS cy, emotion, face_px, sharpness, "
        "abs(yaw_deg) AS yaw, abs(roll_deg) AS roll, detector_score, quality, confidence, uncertain FROM faces"
    )
    by_photo: dict[str, list[dict]] = {}
    for row in result.rows:
        record = dict(zip(result.columns, row, strict=True))
        by_photo.setdefault(record["path"], []).append(record)
    found = []
    for face in truth:
        near = [
            (np.hypot(r["cx"] - face["cx"], r["cy"] - face["cy"]), i, r)
            for i, r in enumerate(by_photo.get(face["path"], []))
        ]
        near = [n for n in near if n[0] < face["side"] / 3]
        if near:
            record = min(near, key=lambda n: n[0])[2]
            found.append({**record, "right": record["emotion"] == names[labels[face["face"]]]})
    return found


COLUMNS = ("face_px", "sharpness", "yaw", "roll", "detector_score", "quality", "confidence")


def bucket_table(found: list[dict], column: str, buckets: int = 5) -> Table:
    values = np.array([f[column] if f[column] is not None else np.nan for f in found], dtype=float)
    right = np.array([f["right"] for f in found])
    known = ~np.isnan(values)
    edges = np.unique(np.quantile(values[known], np.linspace(0, 1, buckets + 1)))
    table = Table(column, "faces", "share", "accuracy", title=f"accuracy by {column} (quantile buckets)")
    for low, high in itertools.pairwise(edges):
        inside = known & (values >= low) & ((values <= high) if high == edges[-1] else (values < high))
        if inside.any():
            table.add_row(f"{low:.3g} - {high:.3g}", str(int(inside.sum())), f"{inside.mean():.1%}",
                          f"{right[inside].mean():.1%}")  # fmt: skip
    if (~known).any():
        table.add_row(
            "none", str(int((~known).sum())), f"{(~known).mean():.1%}", f"{right[~known].mean():.1%}"
        )
    return table


def cut_table(found: list[dict], column: str, cuts: list[float]) -> Table:
    """What a reader keeps with `quality >= cut`: faces kept, their accuracy, and the rest's."""
    right = np.array([f["right"] for f in found])
    values = np.array([f[column] for f in found], dtype=float)
    table = Table(f"{column} at least", "faces kept", "accuracy kept", "accuracy left out",
                  title=f"keeping faces by {column}")  # fmt: skip
    for cut in cuts:
        keep = values >= cut
        table.add_row(f"{cut:g}", f"{keep.mean():.1%}", f"{right[keep].mean():.1%}" if keep.any() else "-",
                      f"{right[~keep].mean():.1%}" if (~keep).any() else "-")  # fmt: skip
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", type=Path, default=DEFAULT_ROOT)
    parser.add_argument("--faces", type=int, default=1500)
    parser.add_argument("--split", choices=("val", "PrivateTest"), default="val")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--save", type=Path, help="also write the matched faces (columns, right or wrong) as JSON"
    )
    args = parser.parse_args()
    if not (args.data_root / "fer2013").is_dir():
        print(f"skipped: no fer2013 under {args.data_root} (pass --data-root)")
        return
    faces, labels, names = faces_of(args.data_root, args.split, args.faces, args.seed)
    console = Console(width=120)
    with tempfile.TemporaryDirectory() as tmp:
        truth = build(Path(tmp) / "photos", faces, args.seed)
        seconds = mine(Path(tmp) / "photos", Path(tmp) / "out")
        found = matched(Path(tmp) / "out", truth, labels, names)
    if args.save:
        args.save.write_text(json.dumps(found, default=float))
    right = np.mean([f["right"] for f in found])
    console.print(f"{len(truth)} faces pasted, {len(found)} found ({len(found) / len(truth):.1%}), "
                  f"{right:.1%} of those right; `fer-mine run` took {seconds:.0f} s")  # fmt: skip
    for column in COLUMNS:
        console.print(bucket_table(found, column))
    console.print(cut_table(found, "quality", [0.0, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]))


if __name__ == "__main__":
    main()
