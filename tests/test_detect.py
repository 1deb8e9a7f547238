"""Face detection as a user meets it: faces of every size found once, landmarks, eye alignment,
OpenCV 4 and 5, damaged weights refused before any work."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from benchmarks.scenes import compose, portrait
from fer_mine.cli import main
from fer_mine.errors import FerMineError
from fer_mine.media import detect
from fer_mine.media.detect import DetectorSettings, FaceDetector, crop_face, iou

OPENCV_5 = int(cv2.__version__.split(".")[0]) >= 5


@pytest.fixture(scope="module")
def yunet() -> FaceDetector:
    return FaceDetector(DetectorSettings())


def _matches(found, boxes) -> tuple[int, int]:
    """(true faces found, detections that are true faces) at IoU >= 0.5."""
    mine = [(f.x, f.y, f.w, f.h) for f in found]
    return (
        sum(any(iou(t, b) >= 0.5 for b in mine) for t in boxes),
        sum(any(iou(t, b) >= 0.5 for t in boxes) for b in mine),
    )


def test_the_default_detector_finds_faces_from_24_px_to_the_whole_photo_once_each(yunet):
    rng = np.random.default_rng(4)
    scene = compose(rng, 1600, 1200, [24, 32, 48, 96, 200])
    hit, correct = _matches(yunet.detect(scene.image), scene.boxes)
    assert hit == len(scene.boxes) == 5 and correct == len(yunet.detect(scene.image))
    for height in (256, 1200):  # a close-up: one face filling the photo is one face, not its parts
        close_up = portrait(rng, height, 0.1)
        found = yunet.detect(close_up.image)
        assert _matches(found, close_up.boxes) == (1, 1) and len(found) == 1


def _eye_angle(face) -> float:
    rx, ry, lx, ly = face.landmarks[:4]
    return math.degrees(math.atan2(ly - ry, lx - rx))


@pytest.mark.parametrize("tilt", [-20, 20])
def test_align_rotates_the_crop_so_the_eyes_are_level(yunet, tilt):
    close_up = portrait(np.random.default_rng(0), 400, 0.6, "astronaut")
    canvas = cv2.copyMakeBorder(close_up.image, 200, 200, 200, 200, cv2.BORDER_REPLICATE)
    center = (canvas.shape[1] / 2, canvas.shape[0] / 2)
    tilted = cv2.warpAffine(canvas, cv2.getRotationMatrix2D(center, tilt, 1.0), canvas.shape[1::-1])
    (face,) = yunet.detect(tilted)
    assert face.landmarks is not None and len(face.landmarks) == 10
    angles = {}
    for align in (False, True):
        crop = crop_face(tilted, face, margin=0.3, align=align)
        assert crop.shape[0] == crop.shape[1]
        (again,) = yunet.detect(cv2.copyMakeBorder(crop, 60, 60, 60, 60, cv2.BORDER_REPLICATE))
        angles[align] = abs(_eye_angle(again))
    # YuNet's eye points under-read strong tilts, so one alignment levels most, not all, of it
    assert angles[False] > 12 and angles[True] < 0.7 * angles[False] and angles[True] < 13


def test_a_detector_that_needs_opencv_4_says_so_in_one_line(tmp_path, monkeypatch):
    if not OPENCV_5:  # what OpenCV 5 lacks, taken away from 4.x
        monkeypatch.delattr(cv2.dnn, "readNetFromCaffe")
    result = CliRunner().invoke(
        main,
        ["run", "--quiet", "--input", str(tmp_path), "--output", str(tmp_path / "o"), "--detector", "ssd"],
    )
    assert result.exit_code == 2
    assert result.output.strip() == (
        f"Error: --detector ssd needs OpenCV 4.x (this is {cv2.__version__}); use the default yunet "
        'or pip install "opencv-python-headless<5"'
    )


@pytest.mark.skipif(OPENCV_5, reason="the SSD and Haar detectors need OpenCV 4.x")
@pytest.mark.parametrize("name", ["ssd", "haar"])
def test_the_opencv_4_detectors_still_run_and_give_no_landmarks(name):
    scene = compose(np.random.default_rng(1), 800, 600, [120])
    found = FaceDetector(DetectorSettings(name)).detect(scene.image)
    if name == "ssd":  # the cascade misses half the faces of these scenes (detection_quality)
        assert _matches(found, scene.boxes)[0] == 1
    assert all(f.landmarks is None for f in found)


def test_a_damaged_shipped_detector_is_refused(tmp_path, monkeypatch):
    path, card = detect.shipped_yunet()
    copy = tmp_path / path.name
    shutil.copy(path, copy)
    copy.write_bytes(copy.read_bytes()[:-100])
    monkeypatch.setattr(detect, "shipped_yunet", lambda: (copy, card))
    with pytest.raises(FerMineError, match="damaged"):
        FaceDetector(DetectorSettings())


def test_damaged_classifier_weights_stop_the_run_before_beam_starts(tmp_path: Path):
    from fer_mine.amacnn.catalog import shipped_model_dir

    model = tmp_path / "model"
    shutil.copytree(shipped_model_dir(), model)
    weights = model / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-10] + b"0123456789")
    photos = tmp_path / "photos"
    photos.mkdir()
    cv2.imwrite(str(photos / "a.jpg"), compose(np.random.default_rng(2), 400, 300, [100]).image)
    result = CliRunner().invoke(
        main, ["run", "--input", str(photos), "--output", str(tmp_path / "out"), "--model", str(model)]
    )
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and "does not match its model card" in result.output
    assert not (tmp_path / "out").exists()  # refused before anything is written
