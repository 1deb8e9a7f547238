"""Choose the default model on more than one view of the data: a candidate must not lose on
shifted faces or cleaner labels to win on the clean validation split.

    python -m benchmarks.selection [--data-root ../shared/data]
        [--models amacnn-fer2013,runs/old-ensemble,amacnn-ferplus] [--scene-faces 1200] [--save rows.json]

A model may name its arithmetic, `amacnn-fer2013@int8` or `amacnn-fer2013@float32`: every view
is then classified in it (`run --precision`). Without one, the views are float32 and in-scene
is what `run` picks (auto).

Every view is built from the default model's validation split (FER-2013 training pictures that
no model of that split trained on), each candidate classifies with flip TTA as `run` does:
- clean: the 48x48 pictures under FER-2013's labels;
- FER+ labels: the same pictures under the FER+ annotators' majority label (where FER+ has one);
- shifted, as faces in real photos are (FER-2013's labels; each picture drawn once per view,
  the same draws for every candidate): `jpeg` (the face at 48-96 px saved at JPEG quality 20-60),
  `blur` (Gaussian, sigma 1-2 px of the 48x48 face), `small` (a 14-28 px face enlarged to the
  network's input), `rotate` (5-15 degrees either way: eyes not quite levelled), `jitter` (the
  box moved by up to 8% and scaled by 0.9-1.1, as YuNet's boxes move), `colour` (a colour photo
  with a colour cast and another tone curve, made gray as `run` does);
- in-scene: `fer-mine run` end to end on the faces pasted into photos (`pipeline_accuracy`'s
  scenes and matching, its default framing, each model in the precision `run` gives it; a missed
  face counts as wrong).
A candidate validated on another split (amacnn-ferplus: FER+'s training pictures, which are
FER-2013's) is scored only on the pictures it never trained on, and compared with the baseline
(the first model) on exactly those pictures. Two tables: accuracy, and balanced accuracy (the
mean of per-class recalls: what a test set with every emotion equally often rewards, as posed
portrait sets have; FER-2013 is a quarter happy and 1.4% disgust). Each cell is the candidate's
figure and its difference from the baseline on the same pictures; `*` marks p < 0.05 (exact
McNemar for accuracy, a paired bootstrap of the pictures for balanced accuracy).
Skips with a message when FER-2013 is absent (a fresh machine).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
from rich.console import Console
from rich.table import Table

from benchmarks.accuracy import DEFAULT_ROOT
from benchmarks.pipeline_accuracy import build, mine, outcomes
from fer_mine.amacnn.compare import SAME_PICTURE, SIGNIFICANCE, other_label_split, relabel
from fer_mine.amacnn.data import nearest_pictures
from fer_mine.amacnn.datasets import LoadedSplit
from fer_mine.amacnn.ensemble import validation_data, validation_split_of
from fer_mine.amacnn.metrics import mcnemar_exact
from fer_mine.amacnn.predict import predict_split
from fer_mine.amacnn.weights import load_model, read_card
from fer_mine.defaults import DEFAULT_TTA
from fer_mine.labels import EMOTIONS

SHIFTS = ("jpeg", "blur", "small", "rotate", "jitter", "colour")
CLASSES = len(EMOTIONS)
BOOTSTRAP = 1000
SIDE = 48  # FER-2013's pictures, and the network's input


def _back(face: np.ndarray) -> np.ndarray:
    """A face of any size to the network's input, as `run`'s preprocessing resizes."""
    shrinking = face.shape[0] > SIDE
    return cv2.resize(face, (SIDE, SIDE), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


def _warp(face: np.ndarray, angle: float, scale: float, dx: float, dy: float) -> np.ndarray:
    matrix = cv2.getRotationMatrix2D((SIDE / 2, SIDE / 2), angle, scale)
    matrix[:, 2] += (dx, dy)
    return cv2.warpAffine(face, matrix, (SIDE, SIDE), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def shift(face: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """One 48x48 gray face as it might come out of a real photo (see the module's docstring)."""
    if kind == "jpeg":
        side = int(rng.integers(SIDE, 2 * SIDE + 1))
        big = cv2.resize(face, (side, side), interpolation=cv2.INTER_CUBIC)
        _, data = cv2.imencode(".jpg", big, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(20, 61))])
        return _back(cv2.imdecode(data, cv2.IMREAD_GRAYSCALE))
    if kind == "blur":
        return cv2.GaussianBlur(face, (0, 0), float(rng.uniform(1.0, 2.0)))
    if kind == "small":
        side = int(rng.integers(14, 29))
        return _back(cv2.resize(face, (side, side), interpolation=cv2.INTER_AREA))
    if kind == "rotate":
        return _warp(face, float(rng.uniform(5, 15) * rng.choice((-1, 1))), 1.0, 0.0, 0.0)
    if kind == "jitter":
        dx, dy = rng.uniform(-0.08, 0.08, 2) * SIDE
        return _warp(face, 0.0, float(rng.uniform(0.9, 1.1)), float(dx), float(dy))
    if kind == "colour":
        gains = rng.uniform(0.6, 1.4, 3)  # a white balance that is off, per channel
        gamma = float(rng.uniform(0.7, 1.4))  # another camera's tone curve
        toned = 255.0 * (face.astype(np.float32) / 255.0) ** gamma
        colour = np.clip(toned[..., None] * gains, 0, 255).astype(np.uint8)
        return cv2.cvtColor(colour, cv2.COLOR_BGR2GRAY)
    raise ValueError(kind)


def shifted_split(val: LoadedSplit, kind: str, seed: int) -> LoadedSplit:
    rng = np.random.default_rng([seed, SHIFTS.index(kind)])
    images = np.stack([shift(face[..., 0], kind, rng)[..., None] for face in val.images])
    return replace(val, images=images)


def never_trained_on(card, val: LoadedSplit, data_root: Path, split: dict) -> np.ndarray:
    """Which validation pictures a model never trained on: all of them when it shares the
    split, else those absent from its own training pictures."""
    if validation_split_of(card) == split:
        return np.ones(len(val.labels), bool)
    own = validation_data(card, data_root, log=lambda *_: None)
    return nearest_pictures(val.images, own.train.images, SAME_PICTURE) < 0


def in_scene(models: list[str], val: LoadedSplit, names: tuple, count: int, seed: int) -> dict[str, tuple]:
    """Per model: which of the pasted faces `run` got right end to end, and their indices in `val`."""
    pick = np.random.default_rng(seed).permutation(len(val.labels))[:count]
    faces, labels = val.images[pick, :, :, 0], val.labels[pick]
    right = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "crops").mkdir()
        truth = build(folder, faces, seed)
        for i, model in enumerate(models):
            name, _, precision = model.partition("@")
            mine(folder / "photos", folder / f"out-{i}", "--model", name, "--precision", precision or "auto")
            _, correct, _ = outcomes(folder / f"out-{i}", truth, labels, names)
            right[model] = correct
    return {m: (r, pick[[t["face"] for t in truth]]) for m, r in right.items()}


def balanced(correct: np.ndarray, labels: np.ndarray) -> float:
    """Mean per-class recall: accuracy as a test set with every emotion equally often scores it."""
    counts = np.bincount(labels, minlength=CLASSES)
    hits = np.bincount(labels, weights=correct, minlength=CLASSES)
    return float(np.mean(hits[counts > 0] / counts[counts > 0]))


def bootstrap_p(correct: np.ndarray, baseline: np.ndarray, labels: np.ndarray, seed: int = 0) -> float:
    """Two-sided paired bootstrap p-value of a balanced-accuracy difference (pictures resampled)."""
    rng = np.random.default_rng(seed)
    deltas = []
    for _ in range(BOOTSTRAP):
        pick = rng.integers(0, len(labels), len(labels))
        deltas.append(balanced(correct[pick], labels[pick]) - balanced(baseline[pick], labels[pick]))
    deltas = np.array(deltas)
    return float(min(1.0, 2 * min((deltas <= 0).mean(), (deltas >= 0).mean())))


def cell(correct: np.ndarray, baseline: np.ndarray, labels: np.ndarray, is_baseline: bool) -> dict:
    """A candidate on one view: accuracy and balanced accuracy, each with its difference from the
    baseline on the same pictures and a p-value (exact McNemar; paired bootstrap)."""
    entry = {"images": len(correct), "accuracy": float(correct.mean()), "balanced": balanced(correct, labels)}
    if not is_baseline:
        only_base, only_this, p = mcnemar_exact(baseline, correct)
        entry |= {"delta": float(correct.mean() - baseline.mean()), "p": p, "only_baseline": only_base,
                  "only_this": only_this,
                  "balanced_delta": entry["balanced"] - balanced(baseline, labels),
                  "balanced_p": bootstrap_p(correct, baseline, labels)}  # fmt: skip
    return entry


def shown(entry: dict, metric: str) -> str:
    delta, p = ("delta", "p") if metric == "accuracy" else ("balanced_delta", "balanced_p")
    if delta not in entry:
        return f"{entry[metric]:.1%}"
    mark = "*" if entry[p] < SIGNIFICANCE else ""
    return f"{entry[metric]:.1%} ({entry[delta] * 100:+.1f}{mark})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", type=Path, default=DEFAULT_ROOT)
    parser.add_argument(
        "--models", default="amacnn-fer2013,amacnn-ferplus", help="comma-separated; the first is the baseline"
    )
    parser.add_argument(
        "--scene-faces", type=int, default=1200, help="faces pasted for the in-scene view (0: skip it)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save", type=Path, help="also write every cell as JSON")
    args = parser.parse_args()
    if not (args.data_root / "fer2013").is_dir():
        print(f"skipped: no fer2013 under {args.data_root} (pass --data-root)")
        return
    console = Console(width=260)
    default_card, _ = read_card(None)
    split = validation_split_of(default_card)
    data = validation_data(default_card, args.data_root, log=lambda *_: None)
    val = data.val
    held, ferplus_labels = relabel(val, other_label_split(default_card, args.data_root, "ferplus"))
    views: dict[str, LoadedSplit] = {"clean": val} | {k: shifted_split(val, k, args.seed) for k in SHIFTS}
    models = args.models.split(",")
    rows: dict[str, dict] = {}
    for name in models:
        path, _, precision = name.partition("@")
        model, card = load_model(path, precision=precision or "float32")
        eligible = never_trained_on(card, val, args.data_root, split)
        console.print(
            f"{name}: {card.members} network(s), {eligible.sum()} of {len(eligible)} pictures never trained on"
        )
        right, seconds = {}, 0.0
        for view, images in views.items():
            start = time.perf_counter()
            predicted = predict_split(model, images, card.preprocess, DEFAULT_TTA)
            seconds += time.perf_counter() - start
            right[view] = predicted == images.labels
            if view == "clean":
                right["ferplus"] = predicted == ferplus_labels
        rows[name] = {"eligible": eligible, "right": right, "passes": card.members * (2 if DEFAULT_TTA else 1),
                      "ms_per_face": 1000 * seconds / (len(views) * len(val.labels))}  # fmt: skip
    scene = (
        in_scene(models, val, default_card.labels, args.scene_faces, args.seed) if args.scene_faces else {}
    )

    columns = ["clean", "ferplus", *SHIFTS] + (["in-scene"] if scene else [])
    base = rows[models[0]]
    saved = {}
    for name in models:
        row, is_base = rows[name], name == models[0]
        mask = row["eligible"]
        entries = {}
        for view in columns:
            if view == "in-scene":
                correct, index = scene[name]
                keep = mask[index]
                this, ref, labels = correct[keep], scene[models[0]][0][keep], val.labels[index][keep]
            else:
                keep = mask & held if view == "ferplus" else mask
                labels = (ferplus_labels if view == "ferplus" else val.labels)[keep]
                this, ref = row["right"][view][keep], base["right"][view][keep]
            entries[view] = cell(this, ref, labels, is_base)
        verdict = "baseline"
        if not is_base:
            significant = [(v, e[d]) for v, e in entries.items() for d, p in (("delta", "p"), ("balanced_delta", "balanced_p"))
                           if e[p] < SIGNIFICANCE]  # fmt: skip
            worse = sorted({v for v, d in significant if d < 0}, key=columns.index)
            better = sorted({v for v, d in significant if d > 0}, key=columns.index)
            verdict = "; ".join(filter(None, [
                f"worse on {', '.join(worse)}" if worse else "",
                f"better on {', '.join(better)}" if better else ""])) or "no difference shown"  # fmt: skip
        saved[name] = {"pictures": int(mask.sum()), "views": entries, "passes": row["passes"],
                       "ms_per_face": row["ms_per_face"], "verdict": verdict}  # fmt: skip
    for metric, what in (("accuracy", "accuracy (exact McNemar)"),
                         ("balanced", "balanced accuracy, the mean of per-class recalls (paired bootstrap)")):  # fmt: skip
        table = Table("model", "pictures", *columns, "shifted, mean", "verdict", "passes/face", "ms/face (views)",
                      title=f"{what} on {len(val.labels)} FER-2013 validation pictures ({held.sum()} with a FER+ "
                            f"label); points against {models[0]}, * p < {SIGNIFICANCE}")  # fmt: skip
        delta = "delta" if metric == "accuracy" else "balanced_delta"
        for name, entry in saved.items():
            views = entry["views"]
            mean = "" if name == models[0] else f"{np.mean([views[k][delta] for k in SHIFTS]) * 100:+.1f}"
            table.add_row(name, str(entry["pictures"]), *(shown(views[v], metric) for v in columns), mean,
                          entry["verdict"], str(entry["passes"]), f"{entry['ms_per_face']:.2f}")  # fmt: skip
        console.print(table)
    if args.save:
        args.save.write_text(json.dumps(saved, indent=2))


if __name__ == "__main__":
    main()
