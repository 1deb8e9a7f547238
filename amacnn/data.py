"""Training data, assembled: every dataset decoded once, each picture used once (datasets that
re-label the same pictures share them), no test picture in training, other annotators' votes
blended in where asked, and a validation split carved from training."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np
import torch

from fer_mine.amacnn.datasets import (
    Dataset,
    LoadedSplit,
    load_split,
    pixel_hashes,
    resolve_datasets,
    resolve_one,
    stratified_split,
)
from fer_mine.amacnn.recipe import TrainOptions
from fer_mine.amacnn.weights import verify_weights
from fer_mine.errors import FerMineError
from fer_mine.labels import CONTEMPT, EMOTIONS
from fer_mine.transforms.preprocess import Preprocess


def resolve_training_data(
    data_root: Path, names: str, options: TrainOptions
) -> tuple[list[Dataset], Dataset | None, list[str]]:
    """The datasets `names` chooses, the one `--votes-from` names (or None) and notes on what
    was found; the weights --init and --teacher name are checked first, before minutes of
    decoding, so that a typo or a damaged file is told at once."""
    for weights in (options.init_from, options.teacher):
        if weights:
            verify_weights(weights)
    datasets, notes = resolve_datasets(data_root, names, options.split_seed, options.keep_contempt)
    if not options.votes_from:
        return datasets, None, notes
    if options.votes_from in {d.name for d in datasets}:
        raise FerMineError(f"--votes-from {options.votes_from}: it is one of the trained --datasets")
    votes = resolve_one(
        data_root, options.votes_from, "--votes-from", options.split_seed, options.keep_contempt
    )
    return datasets, votes, notes


@dataclass
class PreparedData:
    labels: tuple[str, ...]
    train: LoadedSplit
    val: LoadedSplit
    tests: dict[str, LoadedSplit]  # "<dataset>/<split>" -> images
    counts: dict[str, int]
    notes: list[str]


def concat(parts: list[LoadedSplit]) -> LoadedSplit:
    return LoadedSplit(
        np.concatenate([p.images for p in parts]),
        np.concatenate([p.labels for p in parts]),
        [i for p in parts for i in p.ids],
        [s for p in parts for s in p.skipped],
        np.concatenate([p.distributions for p in parts]),
    )


def take(split: LoadedSplit, indices: list[int]) -> LoadedSplit:
    return LoadedSplit(
        split.images[indices],
        split.labels[indices],
        [split.ids[i] for i in indices],
        [],
        split.distributions[indices],
    )


def prepare_data(
    datasets: list[Dataset],
    preprocess: Preprocess,
    options: TrainOptions,
    log: Callable,
    votes: Dataset | None = None,
) -> PreparedData:
    """Decode, drop training images identical to any test image, blend in `votes` (another
    dataset's annotator votes for the same pictures), carve validation from train."""
    labels = EMOTIONS + ((CONTEMPT,) if options.keep_contempt else ())
    trains, tests, notes = [], {}, []
    for dataset in datasets:
        notes += [f"{dataset.name}: {n}" for n in dataset.notes]
        if "train" not in dataset.splits:
            raise FerMineError(f"dataset {dataset.name} has no training split")
        train = load_split(dataset.splits["train"], preprocess, labels)
        missing = [lab for i, lab in enumerate(labels[:7]) if not (train.labels == i).any()]
        if missing:
            raise FerMineError(f"dataset {dataset.name}: no training images for {', '.join(missing)}")
        if train.skipped:
            notes.append(f"{dataset.name}/train: skipped {len(train.skipped)} unreadable images")
        trains.append(train)
        for split_name in ("test",):
            if split_name in dataset.splits:
                loaded = load_split(dataset.splits[split_name], preprocess, labels)
                if loaded.skipped:
                    notes.append(f"{dataset.name}/{split_name}: skipped {len(loaded.skipped)}")
                tests[f"{dataset.name}/{split_name}"] = loaded
    trains = _one_copy_per_picture(datasets, trains, tests, notes)
    train = concat(trains)
    # FER-2013 holds byte-identical images across its splits, and FER+ re-labels the same
    # images: never let a test image (of any chosen dataset) into training.
    test_hashes = {h for t in tests.values() for h in pixel_hashes(t.images)}
    clean = [i for i, h in enumerate(pixel_hashes(train.images)) if h not in test_hashes]
    if len(clean) < len(train.ids):
        notes.append(f"dropped {len(train.ids) - len(clean)} training images identical to a test image")
        train = take(train, clean)
    if votes is not None:
        train = _blend_votes(train, votes, preprocess, labels, options.votes_weight, notes)
    label_names = [labels[i] for i in train.labels]
    keep, held = stratified_split(label_names, options.val_fraction, options.split_seed)
    train, val = take(train, keep), take(train, held)
    if options.train_on_valid:  # after the carve: validation stays the same pictures either way
        train = concat(
            [train, _valid_splits(datasets, preprocess, labels, [train, val, *tests.values()], notes)]
        )
    counts = {"train": len(train.ids), "val": len(val.ids)} | {k: len(v.ids) for k, v in tests.items()}
    for note in notes:
        log(note)
    return PreparedData(labels, train, val, tests, counts, notes)


def _valid_splits(
    datasets: list[Dataset],
    preprocess: Preprocess,
    labels: tuple[str, ...],
    seen: list[LoadedSplit],
    notes: list[str],
) -> LoadedSplit:
    """Each dataset's own `valid` split, to train on (FER+'s FER2013Valid: FER-2013's PublicTest
    pictures, relabelled), less the pictures that training, validation or a test split already
    hold, up to re-encoding noise."""
    parts: list[LoadedSplit] = []
    for dataset in datasets:
        if "valid" not in dataset.splits:
            raise FerMineError(f"--train-on-valid: dataset {dataset.name} has no valid split")
        loaded = load_split(dataset.splits["valid"], preprocess, labels)
        held = same_pictures(loaded.images, [s.images for s in seen + parts])
        notes.append(
            f"{dataset.name}/valid: {int((~held).sum())} pictures join training"
            + (
                f"; {int(held.sum())} are already in training, validation or a test split"
                if held.any()
                else ""
            )
        )
        parts.append(take(loaded, np.flatnonzero(~held).tolist()))
    return concat(parts)


def _one_copy_per_picture(
    datasets: list[Dataset], trains: list[LoadedSplit], tests: dict[str, LoadedSplit], notes: list[str]
) -> list[LoadedSplit]:
    """Datasets that hold the same pictures (FER+ re-labels FER-2013's, saved as PNG where the
    Kaggle copy is JPEG) must not put one picture into training twice, maybe under two labels,
    nor one dataset's test picture into another's training. Each picture keeps the copy of the
    first dataset in this order: datasets with annotator votes (FER+) first, then as given."""
    if len(datasets) < 2:
        return trains
    order = sorted(range(len(datasets)), key=lambda i: not any(datasets[i].splits["train"].votes))
    kept: dict[int, LoadedSplit] = {}
    for position, i in enumerate(order):
        name, train = datasets[i].name, trains[i]
        others = [tests[k] for k in tests if not k.startswith(f"{datasets[i].name}/")]
        earlier = [kept[j] for j in order[:position]]
        in_tests = same_pictures(train.images, [t.images for t in others])
        in_earlier = same_pictures(train.images, [e.images for e in earlier]) & ~in_tests
        if in_tests.any():
            notes.append(
                f"{name}/train: dropped {int(in_tests.sum())} pictures that another dataset tests on"
            )
        if in_earlier.any():
            source = ", ".join(datasets[j].name for j in order[:position])
            notes.append(
                f"{name}/train: {int(in_earlier.sum())} pictures are also in {source}; "
                f"they are used once, labelled by {source}"
            )
        kept[i] = take(train, np.flatnonzero(~(in_tests | in_earlier)).tolist())
    return [kept[i] for i in range(len(datasets))]


def _blend_votes(
    train: LoadedSplit,
    votes: Dataset,
    preprocess: Preprocess,
    labels: tuple[str, ...],
    weight: float,
    notes: list[str],
) -> LoadedSplit:
    """Targets of the training pictures that `votes` holds too (FER+ re-labels FER-2013's):
    (1 - weight) x their own label + weight x the annotators' vote distribution there. Pictures
    it lacks, or labels unknown or "not a face" by majority, keep their own label alone."""
    split = votes.splits.get("train")
    if split is None or not any(split.votes):
        raise FerMineError(f"--votes-from {votes.name}: it holds no annotator votes for training pictures")
    pool = load_split(split, preprocess, labels)
    nearest = nearest_pictures(train.images, pool.images)
    found = nearest >= 0
    distributions = train.distributions.copy()
    distributions[found] = (1 - weight) * distributions[found] + weight * pool.distributions[nearest[found]]
    notes.append(
        f"{int(found.sum())} of {len(found)} training pictures are in {votes.name} too: their targets are "
        f"{1 - weight:g} x their own label + {weight:g} x {votes.name}'s vote distribution"
    )
    return replace(train, distributions=distributions)


def nearest_pictures(images: np.ndarray, pool: np.ndarray, tolerance: float = 2.5) -> np.ndarray:
    """Each image's copy in `pool` up to re-encoding noise, as an index into it, or -1: the
    nearest pool image by an 8x8 thumbnail, accepted when the mean absolute pixel difference is
    under `tolerance`. Measured on FER+ PNGs against the Kaggle FER-2013 JPEGs: the same picture
    differs by 0.7-1.5 gray levels, the nearest other picture by 3 or more (median 34)."""
    found = np.full(len(images), -1, dtype=np.int64)
    if not len(pool) or not len(images):
        return found
    queries = _thumbnails(images)
    keys = torch.from_numpy(_thumbnails(pool))
    key_norms = (keys**2).sum(1)
    for start in range(0, len(images), 2048):
        block = torch.from_numpy(queries[start : start + 2048])
        distance = (block**2).sum(1, keepdim=True) - 2 * block @ keys.T + key_norms
        nearest = distance.argmin(1).numpy()
        part = images[start : start + len(block)].astype(np.int16)
        difference = np.abs(part - pool[nearest].astype(np.int16)).mean(axis=(1, 2, 3))
        found[start : start + len(block)] = np.where(difference < tolerance, nearest, -1)
    return found


def same_pictures(images: np.ndarray, pools: list[np.ndarray], tolerance: float = 2.5) -> np.ndarray:
    """Which images also appear in any pool, up to re-encoding noise (`nearest_pictures`)."""
    found = np.zeros(len(images), dtype=bool)
    for pool in pools:
        found |= nearest_pictures(images, pool, tolerance) >= 0
    return found


def _thumbnails(images: np.ndarray) -> np.ndarray:
    return (
        np.stack(
            [
                cv2.resize(image, (8, 8), interpolation=cv2.INTER_AREA).astype(np.float32).ravel()
                for image in images
            ]
        )
        if len(images)
        else np.zeros((0, 64), np.float32)
    )
