"""Calibrated confidence (amacnn/calibration.py) and face quality (media/quality.py) on cases
whose answer is known."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from fer_mine.amacnn.calibration import (
    calibrate,
    expected_calibration_error,
    fit_temperature,
    uncertain_threshold,
)
from fer_mine.media.quality import head_pose, sharpness

SAMPLES = Path(__file__).resolve().parents[1] / "samples"


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("true_temperature", [0.5, 2.0])
def test_fitting_recovers_a_known_temperature(true_temperature):
    """Labels drawn from softmax(z / T): a network that says softmax(z) is off by exactly T."""
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, (20000, 7))
    truth = softmax(logits / true_temperature)
    labels = np.array([rng.choice(7, p=p) for p in truth])
    fitted = fit_temperature(softmax(logits), labels)
    assert fitted == pytest.approx(true_temperature, rel=0.05)
    calibrated = calibrate(torch.from_numpy(softmax(logits)), fitted).numpy()
    assert expected_calibration_error(calibrated, labels) < 0.015
    assert expected_calibration_error(softmax(logits), labels) > 0.05
    assert (calibrated.argmax(1) == softmax(logits).argmax(1)).all()  # labels never change


def test_ece_of_a_known_case():
    """Every face said 0.8 sure and half of them right: ECE is |0.5 - 0.8| = 0.3."""
    probabilities = np.full((100, 7), 0.2 / 6)
    probabilities[:, 0] = 0.8
    labels = np.array([0] * 50 + [1] * 50)
    assert expected_calibration_error(probabilities, labels) == pytest.approx(0.3)
    assert expected_calibration_error(probabilities, np.zeros(100, int)) == pytest.approx(0.2)


def test_uncertain_cut_off_keeps_the_most_faces_that_meet_the_goal():
    # confidences 0.9 .. 0.45 (10 faces); the first 5 right, then wrong, right, wrong, wrong, wrong
    confidence = np.linspace(0.9, 0.45, 10)
    probabilities = np.stack([confidence, 1 - confidence], axis=1)
    right = np.array([1, 1, 1, 1, 1, 0, 1, 0, 0, 0], bool)
    labels = np.where(right, 0, 1)
    # top 7: 6 of 7 right (85.7%); top 8: 6 of 8 (75%): the goal 0.8 keeps 7
    assert uncertain_threshold(probabilities, labels, goal=0.8) == pytest.approx(confidence[6])
    assert uncertain_threshold(probabilities, np.ones(10, int), goal=0.8) == 1.0  # never met


def test_temperature_one_leaves_probabilities_alone():
    p = torch.tensor([[0.7, 0.2, 0.1]])
    assert torch.equal(calibrate(p, 1.0), p)
    sharper = calibrate(p, 0.5)
    assert sharper[0, 0] > 0.7 and sharper.sum().item() == pytest.approx(1.0)


def test_a_blurred_crop_is_less_sharp():
    rng = np.random.default_rng(0)
    crop = cv2.resize(
        rng.integers(0, 255, (24, 24), dtype=np.uint8), (48, 48), interpolation=cv2.INTER_NEAREST
    )
    blurred = cv2.GaussianBlur(crop, (0, 0), 1.5)
    assert sharpness(crop) > 3 * sharpness(blurred)
    assert sharpness(crop[..., None]) == sharpness(crop)  # (48, 48, 1) as the preprocess gives it


def test_head_pose_from_five_landmarks():
    # a frontal face: eyes level, nose and mouth centred below
    points = np.array([[40, 50], [80, 50], [60, 70], [45, 90], [75, 90]], float)
    yaw, roll = head_pose(tuple(points.ravel()))
    assert yaw == pytest.approx(0, abs=1e-6) and roll == pytest.approx(0, abs=1e-6)
    angle = np.radians(20)  # the same face turned 20 degrees clockwise in the image
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    yaw, roll = head_pose(tuple(((points - 60) @ rotation.T + 60).ravel()))
    assert roll == pytest.approx(20) and yaw == pytest.approx(0, abs=1e-6)
    turned = points.copy()
    turned[2, 0] = 70  # the nose halfway to the left eye: half of a profile
    assert head_pose(tuple(turned.ravel()))[0] == pytest.approx(30)
    assert head_pose(None) == (None, None)


@pytest.fixture(scope="module")
def hot_model(tmp_path_factory):
    """The default model with its card's temperatures raised to 50 (weights and sha256 unchanged):
    a run that applies the card's calibration gives nearly flat probabilities."""
    import json
    import shutil

    from fer_mine.amacnn.catalog import CARD_FILE
    from fer_mine.amacnn.weights import read_card

    _, weights = read_card(None)
    folder = tmp_path_factory.mktemp("hot") / "model"
    shutil.copytree(weights.parent, folder)
    card = json.loads((folder / CARD_FILE).read_text())
    for setting in ("plain", "tta"):
        card["calibration"][setting]["temperature"] = 50.0
    (folder / CARD_FILE).write_text(json.dumps(card))
    return folder


def _mined(model: str | None, tmp_path) -> list[dict]:
    from click.testing import CliRunner

    from fer_mine.cli import main
    from fer_mine.reports.archive import Archive

    extra = ["--model", str(model)] if model else []
    run = CliRunner().invoke(
        main, ["run", "--quiet", "--input", str(SAMPLES), "--output", str(tmp_path), *extra]
    )
    assert run.exit_code == 0, run.output
    result = Archive(tmp_path).ask("SELECT * FROM faces")
    return [dict(zip(result.columns, row, strict=True)) for row in result.rows]


def test_run_records_the_calibrated_probability_and_the_cards_uncertain_cut_off(hot_model, tmp_path):
    from fer_mine.amacnn.weights import read_card
    from fer_mine.labels import EMOTIONS

    card, _ = read_card(None)
    cut = card.uncertain_below(True)
    for model, out in ((None, tmp_path / "shipped"), (hot_model, tmp_path / "hot")):
        faces = _mined(model, out)
        assert faces
        for face in faces:
            p = [face[f"p_{e}"] for e in EMOTIONS]
            assert face["confidence"] == pytest.approx(max(p)) and sum(p) == pytest.approx(1, abs=1e-4)
            assert face["uncertain"] == (face["confidence"] < cut)
        if model is None:
            shipped = max(f["confidence"] for f in faces)
    assert shipped > 0.5  # the shipped temperature keeps sure faces sure
    assert max(f["confidence"] for f in faces) < 0.2  # T = 50: the card's temperature was applied
    assert all(f["uncertain"] for f in faces)


def test_explain_uses_the_cards_temperature(hot_model):
    from fer_mine.amacnn.explain import Explainer

    crop = cv2.imread(str(next(SAMPLES.rglob("*.jpg"))))
    flat = Explainer(str(hot_model)).explain(crop).probabilities
    sure = Explainer(None).explain(crop).probabilities
    assert flat.max() < 0.2 < sure.max()


def test_an_output_keeps_one_calibration_per_model(hot_model, tmp_path):
    """A card calibrated again (same weights, same sha256) does not add faces to an output its
    other calibration made: their confidences would not compare."""
    import shutil

    from click.testing import CliRunner

    from fer_mine.cli import main

    photos = tmp_path / "photos"
    shutil.copytree(SAMPLES / "album-1", photos / "album-1")
    out = tmp_path / "mined"
    first = CliRunner().invoke(main, ["run", "--quiet", "--input", str(photos), "--output", str(out)])
    assert first.exit_code == 0, first.output
    shutil.copytree(SAMPLES / "album-2", photos / "album-2")
    mixed = CliRunner().invoke(
        main, ["run", "--input", str(photos), "--output", str(out), "--model", str(hot_model)]
    )
    assert mixed.exit_code == 2 and "another calibration" in mixed.output and "temperature" in mixed.output
    same = CliRunner().invoke(main, ["run", "--quiet", "--input", str(photos), "--output", str(out)])
    assert same.exit_code == 0, same.output
