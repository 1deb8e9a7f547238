from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import face_like, write_class_tree
from fer_mine.amacnn.datasets import (
    ferplus_majority,
    load_split,
    read_dataset,
    resolve_datasets,
    stratified_split,
)
from fer_mine.errors import FerMineError
from fer_mine.labels import EMOTIONS
from fer_mine.transforms.preprocess import Preprocess


def test_kaggle_tree_reads_train_and_test(data_root: Path):
    dataset = read_dataset(data_root / "synth")
    assert set(dataset.splits) == {"train", "test"}
    assert Counter(dataset.splits["train"].labels) == dict.fromkeys(EMOTIONS, 12)
    assert len(dataset.splits["test"]) == 28


def test_folder_aliases_map_to_canonical_labels(tmp_path: Path):
    names = ("anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise")
    write_class_tree(tmp_path / "ds" / "train", 2, names=names)
    labels = set(read_dataset(tmp_path / "ds").splits["train"].labels)
    assert labels == set(EMOTIONS)


def test_unknown_folder_name_is_a_clear_error(tmp_path: Path):
    write_class_tree(tmp_path / "ds" / "train", 1, names=("happy", "bored"))
    with pytest.raises(FerMineError, match=r"bored.*accepted names"):
        read_dataset(tmp_path / "ds")


def test_tree_without_split_gets_a_stratified_repeatable_80_20_split(tmp_path: Path):
    write_class_tree(tmp_path / "ds", per_class=10)
    first = read_dataset(tmp_path / "ds", seed=3)
    again = read_dataset(tmp_path / "ds", seed=3)
    other = read_dataset(tmp_path / "ds", seed=4)
    assert Counter(first.splits["test"].labels) == dict.fromkeys(EMOTIONS, 2)
    assert Counter(first.splits["train"].labels) == dict.fromkeys(EMOTIONS, 8)
    assert first.splits["test"].ids == again.splits["test"].ids
    assert first.splits["test"].ids != other.splits["test"].ids
    assert not set(first.splits["test"].ids) & set(first.splits["train"].ids)


def test_stratified_split_holds_out_the_fraction_of_each_class():
    labels = ["a"] * 50 + ["b"] * 10
    kept, held = stratified_split(labels, 0.2, seed=0)
    assert Counter(labels[i] for i in held) == {"a": 10, "b": 2}
    assert sorted(kept + held) == list(range(60))


def test_fer2013_csv(tmp_path: Path):
    rng = np.random.default_rng(0)
    rows = ["emotion,pixels,Usage"]
    for i, usage in enumerate(["Training"] * 7 + ["PublicTest", "PrivateTest"]):
        pixels = " ".join(str(v) for v in face_like(i % 7, rng).ravel())
        rows.append(f"{i % 7},{pixels},{usage}")
    (tmp_path / "fer").mkdir()
    (tmp_path / "fer" / "fer2013.csv").write_text("\n".join(rows) + "\n")
    dataset = read_dataset(tmp_path / "fer")
    # CSV codes: 0 angry ... 4 sad, 5 surprise, 6 neutral
    assert dataset.splits["train"].labels == [
        "angry",
        "disgust",
        "fear",
        "happy",
        "sad",
        "surprise",
        "neutral",
    ]
    assert dataset.splits["test"].ids == ["PublicTest_7", "PrivateTest_8"]
    loaded = load_split(dataset.splits["train"], Preprocess(), EMOTIONS)
    assert loaded.images.shape == (7, 48, 48, 1)


@pytest.mark.parametrize(
    ("votes", "keep_contempt", "expected"),
    [
        ([0, 8, 0, 0, 0, 0, 0, 0, 0, 2], False, "happy"),
        ([4, 4, 0, 0, 0, 0, 0, 0, 0, 2], False, None),  # tie
        ([1, 0, 0, 0, 0, 0, 0, 0, 9, 0], False, None),  # unknown
        ([0, 0, 0, 0, 0, 0, 0, 0, 0, 10], False, None),  # not a face
        ([2, 0, 0, 0, 0, 0, 0, 8, 0, 0], False, None),  # contempt dropped
        ([2, 0, 0, 0, 0, 0, 0, 8, 0, 0], True, "contempt"),
        ([0, 0, 0, 0, 7, 0, 3, 0, 0, 0], False, "angry"),
    ],
)
def test_ferplus_majority_vote(votes, keep_contempt, expected):
    assert ferplus_majority(votes, keep_contempt) == expected


def test_ferplus_layout(tmp_path: Path):
    root = tmp_path / "ferplus"
    rng = np.random.default_rng(0)
    for folder in ("FER2013Train", "FER2013Test"):
        (root / folder).mkdir(parents=True)
        rows = []
        for i in range(4):
            name = f"fer{i:07d}.png"
            cv2.imwrite(str(root / folder / name), face_like(i, rng))
            votes = [
                [10, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                [0, 9, 1, 0, 0, 0, 0, 0, 0, 0],
                [5, 5, 0, 0, 0, 0, 0, 0, 0, 0],
                [0, 0, 0, 0, 0, 0, 0, 0, 10, 0],
            ][i]
            rows.append(f'{name},"(0, 0, 48, 48)",' + ",".join(map(str, votes)))
        (root / folder / "label.csv").write_text("\n".join(rows) + "\n")
    dataset = read_dataset(root)
    assert dataset.splits["train"].labels == ["neutral", "happy"]
    assert any("2 images excluded" in note for note in dataset.notes)


def test_corrupt_images_are_skipped_and_reported(data_root: Path):
    bad = data_root / "synth" / "train" / "happy"
    (bad / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    (bad / "empty.jpg").write_bytes(b"")
    dataset = read_dataset(data_root / "synth")
    loaded = load_split(dataset.splits["train"], Preprocess(), EMOTIONS)
    assert sorted(loaded.skipped) == ["broken.png", "empty.jpg"]
    assert len(loaded.ids) == 7 * 12


def test_all_lists_found_and_missing_datasets(data_root: Path):
    datasets, notes = resolve_datasets(data_root, "all")
    assert [d.name for d in datasets] == ["synth"]
    assert "found: synth" in notes[0]
    assert "fer2013" in notes[1] and "ferplus" in notes[1]


def test_unknown_dataset_and_empty_root_are_errors(tmp_path: Path, data_root: Path):
    with pytest.raises(FerMineError, match="not in"):
        resolve_datasets(data_root, "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FerMineError, match="no dataset folders"):
        resolve_datasets(tmp_path / "empty", "all")
    with pytest.raises(FerMineError, match="not found"):
        resolve_datasets(tmp_path / "missing", "all")
