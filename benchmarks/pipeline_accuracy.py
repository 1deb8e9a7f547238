"""End-to-end accuracy of `fer-mine run`: FER-2013 faces pasted into photos, found, framed, classified.

    python -m benchmarks.pipeline_accuracy [--data-root ../shared/data] [--faces 1200] [--split val]
                                           [--framings align:-0.05] [--models amacnn-fer2013,runs/x]
                                           [--precisions float32,int8]

Takes labelled FER-2013 faces (48x48 gray) from the default model's validation split (carved
from training data, never trained on: the split to choose with) or from PrivateTest (to report
after choosing), upscales each 3-6x, pastes 1 to 4 of them into 1024x768 synthetic photos
(varied backgrounds, half of the faces rotated by up to +-25 degrees), runs the real
`fer-mine run` on those photos for each crop framing (margin, --align/--no-align), and scores:
share of faces found, accuracy on the found faces, and end to end (a missed face counts as
wrong). The `--aligned` row runs the same faces as 48x48 crops (no detection): the ceiling.
`--models` runs every row for each model on the same photos (they must share the default
model's validation split, as models compared with `fer-mine compare` do); `--precisions` runs
them for each `run --precision` (default: auto, what `run` picks).
Skips with a message when FER-2013 is absent (a fresh machine).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import duckdb
import numpy as np
from rich.console import Console
from rich.table import Table

from benchmarks.accuracy import DEFAULT_ROOT
from benchmarks.scenes import _background
from fer_mine.amacnn.ensemble import check_shared_split, validation_data
from fer_mine.amacnn.weights import read_card

PHOTO = (1024, 768)
FRAMINGS = [(align, margin) for align in (False, True) for margin in (-0.1, -0.05, 0.0, 0.05, 0.1, 0.2)]


def faces_of(data_root: Path, split: str, count: int, seed: int) -> tuple[np.ndarray, np.ndarray, tuple]:
    """`count` labelled 48x48 faces of the default model's validation split or of PrivateTest."""
    card, _ = read_card(None)
    data = validation_data(card, data_root, log=lambda *_: None)
    if split == "val":
        images, labels = data.val.images, data.val.labels
    else:
        test = data.tests["fer2013/test"]
        keep = np.array([i.startswith(split) for i in test.ids])
        images, labels = test.images[keep], test.labels[keep]
    pick = np.random.default_rng(seed).permutation(len(labels))[:count]
    return images[pick, :, :, 0], labels[pick], card.labels


def paste(photo: np.ndarray, face: np.ndarray, rng: np.random.Generator, taken: list) -> tuple | None:
    """Paste an upscaled (and maybe rotated) face where nothing else is; its (cx, cy, side)."""
    side = int(48 * rng.uniform(3, 6))
    big = cv2.resize(face, (side, side), interpolation=cv2.INTER_CUBIC)
    big = cv2.cvtColor(big, cv2.COLOR_GRAY2BGR)
    angle = float(rng.uniform(-25, 25)) if rng.random() < 0.5 else 0.0
    return place(photo, big, angle, rng, taken)


def place(
    photo: np.ndarray, big: np.ndarray, angle: float, rng: np.random.Generator, taken: list
) -> tuple | None:
    """Rotate a square BGR face by `angle` and put it where no other face is (60 tries); its
    (cx, cy, side), or None when there was no room."""
    side = big.shape[0]
    reach = int(side * 1.42) + 2  # the rotated square's bounding box
    matrix = cv2.getRotationMatrix2D((side / 2, side / 2), angle, 1.0)
    matrix[:, 2] += (reach - side) / 2
    patch = cv2.warpAffine(big, matrix, (reach, reach))
    mask = cv2.warpAffine(np.full((side, side), 255, np.uint8), matrix, (reach, reach)) > 127
    height, width = photo.shape[:2]
    for _ in range(60):
        x, y = int(rng.integers(0, width - reach)), int(rng.integers(0, height - reach))
        if all(x + reach <= a or a + s <= x or y + reach <= b or b + s <= y for a, b, s in taken):
            region = photo[y : y + reach, x : x + reach]
            region[mask] = patch[mask]
            taken.append((x, y, reach))
            return x + reach / 2, y + reach / 2, side
    return None


def build(folder: Path, faces: np.ndarray, seed: int) -> list[dict]:
    """Photos under folder/photos, crops under folder/crops; the truth, one dict per face."""
    rng = np.random.default_rng(seed)
    truth, index, photo_number = [], 0, 0
    while index < len(faces):
        photo = _background(rng, *PHOTO)
        taken: list = []
        name = f"p{photo_number:05d}.jpg"  # as `faces.path` has it: relative to the input
        for _ in range(int(rng.integers(1, 5))):
            if index >= len(faces):
                break
            placed = paste(photo, faces[index], rng, taken)
            if placed:
                truth.append(
                    {"face": index, "path": name, "cx": placed[0], "cy": placed[1], "side": placed[2]}
                )
                cv2.imwrite(str(folder / f"crops/c{index:05d}.png"), faces[index])
                index += 1
        (folder / "photos").mkdir(exist_ok=True)
        cv2.imwrite(str(folder / "photos" / name), photo, [cv2.IMWRITE_JPEG_QUALITY, 92])
        photo_number += 1
    return truth


def mine(inputs: Path, output: Path, *options: str) -> float:
    start = time.perf_counter()
    cmd = [
        sys.executable,
        "-m",
        "fer_mine.cli",
        "run",
        "--quiet",
        "--input",
        str(inputs),
        "--output",
        str(output),
    ]
    subprocess.run([*cmd, *options], check=True)
    return time.perf_counter() - start


def outcomes(
    output: Path, truth: list[dict], labels: np.ndarray, names: tuple
) -> tuple[np.ndarray, np.ndarray, int]:
    """Per true face: found, and right (a missed face is not); and how many boxes matched no face.
    A face is matched to the detection whose centre is nearest, within a third of its size."""
    con = duckdb.connect()
    rows = con.execute(
        "SELECT path, box_x + box_w / 2, box_y + box_h / 2, emotion FROM read_parquet($f)",
        {"f": str(output / "faces" / "*.parquet")},
    ).fetchall()
    by_photo: dict[str, list] = {}
    for path, cx, cy, emotion in rows:
        by_photo.setdefault(path, []).append((cx, cy, emotion))
    found, right = np.zeros(len(truth), bool), np.zeros(len(truth), bool)
    for i, face in enumerate(truth):
        near = [
            (np.hypot(cx - face["cx"], cy - face["cy"]), emotion)
            for cx, cy, emotion in by_photo.get(face["path"], [])
        ]
        near = [n for n in near if n[0] < face["side"] / 3]
        if near:
            found[i] = True
            right[i] = min(near)[1] == names[labels[face["face"]]]
    return found, right, len(rows) - int(found.sum())


def score(output: Path, truth: list[dict], labels: np.ndarray, names: tuple) -> dict:
    found, right, extra = outcomes(output, truth, labels, names)
    return {"found": found.mean(), "acc_found": right.sum() / max(1, found.sum()), "end_to_end": right.mean(),
            "extra": extra}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", type=Path, default=DEFAULT_ROOT)
    parser.add_argument("--faces", type=int, default=1200)
    parser.add_argument("--split", choices=("val", "PrivateTest"), default="val")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--framings", help="only these, e.g. 'align:0,no-align:0.1' (default: all)")
    parser.add_argument("--models", help="comma-separated models to run (default: the default model)")
    parser.add_argument("--precisions", default="auto", help="comma-separated `run --precision` values")
    args = parser.parse_args()
    if not (args.data_root / "fer2013").is_dir():
        print(f"skipped: no fer2013 under {args.data_root} (pass --data-root)")
        return
    models = args.models.split(",") if args.models else [""]
    # the faces come from the default model's validation split: every model must share it
    check_shared_split([read_card(None)[0], *(read_card(m)[0] for m in models if m)])
    faces, labels, names = faces_of(args.data_root, args.split, args.faces, args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "crops").mkdir()
        truth = build(folder, faces, args.seed)
        photos = len({t["path"] for t in truth})
        table = Table("model", "framing", "faces found", "accuracy (found)", "end to end", "extra boxes", "s",
                      title=f"fer-mine run on {len(truth)} FER-2013 {args.split} faces in {photos} photos "
                            f"of {PHOTO[0]}x{PHOTO[1]} (flip TTA)")  # fmt: skip
        framings = FRAMINGS
        if args.framings:
            framings = [
                (mode == "align", float(m)) for mode, m in (f.split(":") for f in args.framings.split(","))
            ]
        runs = [(m, p) for m in models for p in args.precisions.split(",")]
        for i, (model, precision) in enumerate(runs):
            chosen = ["--model", model] if model else []
            chosen += ["--precision", precision]
            name = (model or "default") + ("" if precision == "auto" else f", {precision}")
            seconds = mine(folder / "crops", folder / f"ceiling-{i}", "--aligned", *chosen)
            ceiling = score_aligned(folder / f"ceiling-{i}", labels, names)
            table.add_row(name, "--aligned 48x48 crops (ceiling)", "100%", f"{ceiling:.1%}", f"{ceiling:.1%}",
                          "-", f"{seconds:.0f}")  # fmt: skip
            for align, margin in framings:
                out = folder / f"out-{i}-{align}-{margin}"
                flags = ["--align" if align else "--no-align", "--margin", str(margin)]
                seconds = mine(folder / "photos", out, *flags, *chosen)
                s = score(out, truth, labels, names)
                table.add_row(name, " ".join(flags), f"{s['found']:.1%}", f"{s['acc_found']:.1%}",
                              f"{s['end_to_end']:.1%}", str(s["extra"]), f"{seconds:.0f}")  # fmt: skip
        Console(width=160).print(table)


def score_aligned(output: Path, labels: np.ndarray, names: tuple) -> float:
    con = duckdb.connect()
    rows = con.execute(
        "SELECT path, emotion FROM read_parquet($f)", {"f": str(output / "faces" / "*.parquet")}
    ).fetchall()
    return float(np.mean([emotion == names[labels[int(Path(p).stem[1:])]] for p, emotion in rows]))


if __name__ == "__main__":
    main()
