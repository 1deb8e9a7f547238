"""`fer-mine explain` and the attention overlays of `report --html --attention`."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from click.testing import CliRunner

from conftest import face_like
from fer_mine.amacnn.explain import Explainer
from fer_mine.cli import main
from fer_mine.pipeline.detect import DetectorSettings, FaceDetector

SAMPLES = Path(__file__).resolve().parents[1] / "samples"


def test_attention_map_has_the_input_shape_stays_in_range_and_follows_the_input():
    explainer = Explainer()  # the shipped default: an ensemble, so the members' maps averaged
    rng = np.random.default_rng(0)
    first = explainer.explain(face_like(3, rng, 96))
    second = explainer.explain(face_like(0, rng, 96)[::-1].copy())
    size = explainer.card.preprocess.size
    for explained in (first, second):
        assert explained.attention.shape == (size, size)
        assert explained.attention.min() >= 0.0 and explained.attention.max() <= 1.0
        assert abs(explained.probabilities.sum() - 1) < 1e-5
    assert first.grid == (6, 6)
    assert np.abs(first.attention - second.attention).max() > 0.05
    assert "mean of its 3 members' maps" in explainer.note


def test_explain_writes_one_figure_per_face(tmp_path):
    album = SAMPLES / "album-1"
    detector = FaceDetector(DetectorSettings())
    faces = sum(len(detector.detect(cv2.imread(str(p)))) for p in album.glob("*.jpg"))
    result = CliRunner().invoke(main, ["explain", str(album), "--output", str(tmp_path / "ex")])
    assert result.exit_code == 0, result.output
    figures = sorted((tmp_path / "ex").glob("*.png"))
    assert len(figures) == faces > 0
    picture = cv2.imread(str(figures[0]))
    assert picture is not None and picture.shape[1] > 600  # face, overlay and bars side by side


def test_explain_aligned_crop_and_a_bad_path(tmp_path):
    crop = tmp_path / "face.png"
    cv2.imwrite(str(crop), face_like(3, np.random.default_rng(1)))
    result = CliRunner().invoke(main, ["explain", str(crop), "--aligned", "--output", str(tmp_path / "ex")])
    assert result.exit_code == 0, result.output
    assert [p.name for p in (tmp_path / "ex").glob("*.png")] == ["face-face0.png"]
    result = CliRunner().invoke(
        main, ["explain", str(tmp_path / "nope.jpg"), "--output", str(tmp_path / "ex")]
    )
    assert result.exit_code == 2 and "does not exist" in result.output


def test_report_gallery_with_attention_overlays(tmp_path):
    out = tmp_path / "mined"
    run = CliRunner().invoke(
        main, ["run", "--quiet", "--input", str(SAMPLES / "album-1"), "--output", str(out)]
    )
    assert run.exit_code == 0, run.output
    page = tmp_path / "report.html"
    args = ["report", str(out), "--name", "gallery", "--html", str(page)]
    plain = CliRunner().invoke(main, args)
    assert plain.exit_code == 0, plain.output
    without = page.read_text()
    result = CliRunner().invoke(main, [*args, "--attention"])
    assert result.exit_code == 0, result.output
    with_maps = page.read_text()
    assert "attention map (amacnn-fer2013: mean of its 3 members" in with_maps
    assert with_maps.count("data:image/jpeg") == without.count("data:image/jpeg") > 0
    assert with_maps != without
    refused = CliRunner().invoke(main, ["report", str(out), "--attention"])
    assert refused.exit_code == 2 and "give --html too" in refused.output
    other = CliRunner().invoke(main, [*args, "--attention", "--model", "amacnn-ferplus"])
    assert other.exit_code == 2 and "pass that model as --model" in other.output
