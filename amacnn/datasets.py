"""Dataset readers: class-folder trees, FER-2013's fer2013.csv, and FER+ (Microsoft layout).

Every reader returns the same thing, a `Dataset` of named splits of labelled image
references; `load_split` decodes a split into one uint8 array at the model's input size.
"""

from __future__ import annotations

import csv
import hashlib
import os
import random
from collections import Counter, defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from fer_mine.errors import FerMineError
from fer_mine.labels import CONTEMPT, canonical_label
from fer_mine.transforms.preprocess import Preprocess

DATA_ROOT_ENV = "FER_MINE_DATA"
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif"}
# Datasets the source paper names (folder names we look for under the data root).
KNOWN_DATASETS: dict[str, str] = {
    "fer2013": "FER-2013, Kaggle folder layout or the original fer2013.csv",
    "ferplus": "FER+ 10-annotator labels, Microsoft layout (FER2013Train|Valid|Test/label.csv)",
    "facial-expression": 'Kaggle "Facial Expression Dataset" (class folders)',
    "face-recognition": 'Kaggle "Face Recognition Dataset" (class folders)',
}
# fer2013.csv's integer codes
FER2013_CSV_CODES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
# FER+ vote columns after the image name and face box
FERPLUS_COLUMNS = (
    "neutral",
    "happiness",
    "surprise",
    "sadness",
    "anger",
    "disgust",
    "fear",
    "contempt",
    "unknown",
    "NF",
)
FERPLUS_SPLITS = {"train": "FER2013Train", "valid": "FER2013Valid", "test": "FER2013Test"}
SPLIT_FOLDERS = ("train", "valid", "test")  # split folders a class-folder dataset may hold
ALL_SPLITS = "all"  # every split of a dataset together (evaluation of a whole labelled folder)


@dataclass
class Split:
    """Labelled images: each item has an id (its file name), a label and a path or pixels."""

    ids: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    paths: list[str | None] = field(default_factory=list)
    pixels: list[np.ndarray | None] = field(default_factory=list)
    # FER+: the annotators' votes per canonical label; None where a dataset has one label only
    votes: list[dict[str, int] | None] = field(default_factory=list)

    def add(self, id_: str, label: str, path: str | None = None, pixels=None, votes=None) -> None:
        self.ids.append(id_)
        self.labels.append(label)
        self.paths.append(path)
        self.pixels.append(pixels)
        self.votes.append(votes)

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def union(cls, splits: list[Split]) -> Split:
        joined = cls()
        for split in splits:
            for column in ("ids", "labels", "paths", "pixels", "votes"):
                getattr(joined, column).extend(getattr(split, column))
        return joined

    def subset(self, indices: list[int]) -> Split:
        return Split(
            [self.ids[i] for i in indices],
            [self.labels[i] for i in indices],
            [self.paths[i] for i in indices],
            [self.pixels[i] for i in indices],
            [self.votes[i] for i in indices],
        )


@dataclass
class Dataset:
    name: str
    layout: str
    splits: dict[str, Split]
    notes: list[str] = field(default_factory=list)

    def split(self, name: str) -> Split:
        """One split by name, or `all` of them together; a missing one is a one-line error."""
        if name == ALL_SPLITS:
            return Split.union(list(self.splits.values()))
        if name not in self.splits:
            raise FerMineError(
                f"dataset {self.name} has no {name!r} split (has {', '.join(self.splits)}, or {ALL_SPLITS})"
            )
        return self.splits[name]


def default_data_root() -> Path | None:
    value = os.environ.get(DATA_ROOT_ENV)
    return Path(value) if value else None


def stratified_split(labels: list[str], fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Indices (kept, held_out): `fraction` of every class held out, repeatable for a seed."""
    by_class: dict[str, list[int]] = defaultdict(list)
    for i, label in enumerate(labels):
        by_class[label].append(i)
    rng = random.Random(seed)
    kept, held = [], []
    for label in sorted(by_class):
        members = by_class[label]
        rng.shuffle(members)
        n_held = round(len(members) * fraction)
        held += members[:n_held]
        kept += members[n_held:]
    return sorted(kept), sorted(held)


def _read_class_folders(folder: Path) -> Split:
    split = Split()
    for class_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        try:
            label = canonical_label(class_dir.name)
        except ValueError as exc:
            raise FerMineError(f"{class_dir}: {exc}") from None
        for path in sorted(class_dir.rglob("*")):
            if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
                split.add(path.name, label, path=str(path))
    return split


def read_folder_tree(root: Path, name: str, seed: int = 0) -> Dataset:
    """Split folders (`train/`, `valid/`, `test/`, any of them) of `<emotion>/*`, or bare
    `<emotion>/*` split 80/20 (all of it: `--split all`)."""
    present = [s for s in SPLIT_FOLDERS if (root / s).is_dir()]
    if present:
        splits = {s: _read_class_folders(root / s) for s in present}
        return Dataset(name, f"class folders ({'/'.join(present)})", splits)
    everything = _read_class_folders(root)
    train_idx, test_idx = stratified_split(everything.labels, 0.2, seed)
    return Dataset(
        name,
        "class folders (no split)",
        {"train": everything.subset(train_idx), "test": everything.subset(test_idx)},
        [f"no official split: seeded stratified 80/20 split (seed {seed})"],
    )


def read_fer2013_csv(csv_path: Path, name: str) -> Dataset:
    """FER-2013's original CSV: emotion (0-6), pixels (2304 numbers), Usage."""
    splits = {"train": Split(), "test": Split()}
    with csv_path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or not {"emotion", "pixels"} <= set(reader.fieldnames):
            raise FerMineError(f"{csv_path}: expected columns emotion,pixels[,Usage]")
        for row_number, row in enumerate(reader):
            usage = row.get("Usage") or "Training"
            values = np.array(row["pixels"].split(), dtype=np.uint8)
            side = round(len(values) ** 0.5)
            pixels = values.reshape(side, side) if side * side == len(values) else None
            target = "train" if usage == "Training" else "test"
            label = FER2013_CSV_CODES[int(row["emotion"])]
            splits[target].add(f"{usage}_{row_number}", label, pixels=pixels)
    return Dataset(name, "fer2013.csv", splits)


def ferplus_majority(votes: list[int], keep_contempt: bool) -> str | None:
    """The label most annotators chose; None for ties, unknown, not-a-face, dropped contempt."""
    top = max(votes)
    if top == 0 or votes.count(top) > 1:
        return None
    column = FERPLUS_COLUMNS[votes.index(top)]
    if column in ("unknown", "NF") or (column == CONTEMPT and not keep_contempt):
        return None
    return canonical_label(column)


def read_ferplus(root: Path, name: str, keep_contempt: bool = False) -> Dataset:
    splits: dict[str, Split] = {}
    excluded = Counter()
    for split_name, folder in FERPLUS_SPLITS.items():
        label_file = root / folder / "label.csv"
        if not label_file.is_file():
            continue
        split = Split()
        with label_file.open(newline="") as handle:
            for row in csv.reader(handle):
                if not row:
                    continue
                votes = [int(v) for v in row[2:12]]
                label = ferplus_majority(votes, keep_contempt)
                if label is None:
                    excluded[split_name] += 1
                    continue
                # the emotion columns' votes (not unknown / not-a-face), for --ferplus-targets distribution
                counts = {canonical_label(c): v for c, v in zip(FERPLUS_COLUMNS[:8], votes, strict=False)}
                split.add(row[0], label, path=str(root / folder / row[0]), votes=counts)
        splits[split_name] = split
    reasons = "tie, unknown, not a face" + ("" if keep_contempt else ", contempt")
    notes = [f"{split}: {n} images excluded ({reasons})" for split, n in excluded.items()]
    return Dataset(name, "FER+ (Microsoft layout, majority vote)", splits, notes)


def read_dataset(folder: Path, seed: int = 0, keep_contempt: bool = False) -> Dataset:
    """Recognize a dataset folder's layout and read it."""
    name = folder.name
    if not folder.is_dir():
        raise FerMineError(f"dataset folder not found: {folder}")
    if (folder / "FER2013Train" / "label.csv").is_file():
        return read_ferplus(folder, name, keep_contempt)
    fer_csv = next((p for p in sorted(folder.glob("*.csv")) if _is_fer2013_csv(p)), None)
    if fer_csv is not None:
        return read_fer2013_csv(fer_csv, name)
    if any(p.is_dir() for p in folder.iterdir()):
        return read_folder_tree(folder, name, seed)
    raise FerMineError(f"{folder}: no class folders, fer2013.csv or FER+ label.csv found")


def _is_fer2013_csv(path: Path) -> bool:
    with path.open(newline="") as handle:
        header = handle.readline().strip().split(",")
    return {"emotion", "pixels"} <= set(header)


def resolve_datasets(
    data_root: Path, names: str, seed: int = 0, keep_contempt: bool = False
) -> tuple[list[Dataset], list[str]]:
    """`names` is a comma list or `all`; returns the datasets and notes on what was found."""
    if not data_root.is_dir():
        raise FerMineError(f"data root not found: {data_root}")
    present = sorted(p.name for p in data_root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not present:
        raise FerMineError(f"data root {data_root} holds no dataset folders")
    notes = []
    if names.strip().lower() == "all":
        chosen = present
        missing = [k for k in KNOWN_DATASETS if k not in present]
        notes.append(f"found: {', '.join(present)}")
        if missing:
            notes.append(f"known but missing: {', '.join(missing)}")
    else:
        chosen = [n.strip() for n in names.split(",") if n.strip()]
        unknown = [n for n in chosen if n not in present]
        if unknown:
            raise FerMineError(
                f"dataset {', '.join(unknown)} not in {data_root}; found: {', '.join(present)}"
            )
    return [read_dataset(data_root / n, seed, keep_contempt) for n in chosen], notes


def resolve_one(
    data_root: Path, name: str, option: str, seed: int = 0, keep_contempt: bool = False
) -> Dataset:
    """The one dataset that `option` (another label set of the same pictures: `--votes-from`,
    `--other-labels`) names; it must have a training split, where those pictures are."""
    found, _ = resolve_datasets(data_root, name, seed, keep_contempt)
    if len(found) != 1 or "train" not in found[0].splits:
        raise FerMineError(f"{option} {name}: name one dataset that has a training split")
    return found[0]


# Cuts the face to score out of a whole photo: (crop or None when it has no face, faces found)
FaceCropper = Callable[[np.ndarray], tuple[np.ndarray | None, int]]


def _decode_photo(path: str | None, pixels: np.ndarray | None, preprocess: Preprocess, crop: FaceCropper):
    """A whole photo through `crop` (the detector and crop path of `fer-mine run`), read as
    `run` reads it (EXIF orientation applied): (model pixels or None, faces found or None)."""
    from fer_mine.media.images import FoundFile, ImageError, decode, read_bytes

    if pixels is None:
        try:
            file = FoundFile(path, "", path)
            pixels = decode(file, read_bytes(file)).pixels
        except ImageError:
            return None, None
    elif pixels.ndim == 2:
        pixels = cv2.cvtColor(pixels, cv2.COLOR_GRAY2BGR)
    face, count = crop(pixels)
    return (None if face is None else preprocess.to_pixels(face)), count


def _decode(path: str | None, pixels: np.ndarray | None, preprocess: Preprocess):
    try:
        if pixels is None:
            data = np.fromfile(path, dtype=np.uint8)
            pixels = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
            if pixels is None:
                return None
        if pixels.dtype != np.uint8:  # 16-bit images
            pixels = cv2.convertScaleAbs(pixels, alpha=255.0 / max(1, int(pixels.max())))
        return preprocess.to_pixels(pixels)
    except (cv2.error, OSError, ValueError):
        return None


@dataclass
class LoadedSplit:
    images: np.ndarray  # uint8 (N, H, W, C)
    labels: np.ndarray  # int64 indices into the label list
    ids: list[str]
    skipped: list[str]  # ids that could not be decoded
    # float32 (N, K): the votes over the label list, normalised (FER+), else one-hot of `labels`
    distributions: np.ndarray
    # with a face cropper: photos where it found no face (not scored), and how many had several
    no_face: list[str] = field(default_factory=list)
    several_faces: int = 0


def load_split(
    split: Split, preprocess: Preprocess, label_names: tuple[str, ...], crop: FaceCropper | None = None
) -> LoadedSplit:
    """Decode every image at the model's input size; unreadable ones are skipped and listed.
    With `crop`, each image is a whole photo and the face it returns is what gets scored."""
    index = {name: i for i, name in enumerate(label_names)}
    items = list(zip(split.paths, split.pixels, strict=True))
    counts: list[int | None] = [None] * len(items)
    if crop is None:
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
            decoded = list(pool.map(lambda a: _decode(*a, preprocess), items))
    else:  # one detector, one photo at a time: OpenCV's detectors are not shared across threads
        decoded = []
        for i, (path, pixels) in enumerate(items):
            image, counts[i] = _decode_photo(path, pixels, preprocess, crop)
            decoded.append(image)
    unreadable = [img is None and counts[i] is None for i, img in enumerate(decoded)]
    keep = [i for i, img in enumerate(decoded) if img is not None and split.labels[i] in index]
    skipped = [split.ids[i] for i, bad in enumerate(unreadable) if bad]
    no_face = [split.ids[i] for i, n in enumerate(counts) if n == 0]
    several = sum(1 for n in counts if n is not None and n > 1)
    shape = (0, preprocess.size, preprocess.size, preprocess.channels)
    images = np.stack([decoded[i] for i in keep]) if keep else np.zeros(shape, np.uint8)
    labels = np.array([index[split.labels[i]] for i in keep], dtype=np.int64)
    distributions = np.eye(len(label_names), dtype=np.float32)[labels]
    for row, i in enumerate(keep):
        votes = split.votes[i]
        if votes:  # votes for labels outside the list (a dropped contempt) are left out
            kept = np.array([votes.get(name, 0) for name in label_names], dtype=np.float32)
            distributions[row] = kept / kept.sum()
    return LoadedSplit(images, labels, [split.ids[i] for i in keep], skipped, distributions, no_face, several)


def pixel_hashes(images: np.ndarray) -> list[str]:
    return [hashlib.blake2b(img.tobytes(), digest_size=16).hexdigest() for img in images]
