"""`fer-mine explain` and the attention overlays of `report --html --attention`."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from click.testing import CliRunner

from conftest import face_like
from fer_mine.amacnn.explain import Explainer
from fer_mine.cli import main
from fer_mine.media.detect import DetectorSettings, FaceDetector

SAMPLES = Path(__file__).resolve().parents[1] / "samples"


def test_attention_map_has_the_input_shape_stays_in_range_and_follows_the_input():
    explainer = Explainer("amacnn-fer2013-fast")  # one network
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
    assert explainer.note.startswith("amacnn-fer2013-fast: its map;")


def test_an_ensembles_attention_map_is_its_members_maps_averaged(tmp_path):
    import copy
    import dataclasses

    import torch

    from fer_mine.amacnn.model import AMACNNEnsemble
    from fer_mine.amacnn.weights import load_model, save_model

    single, card = load_model("amacnn-fer2013-fast", inference=False)
    other = copy.deepcopy(single)
    with torch.no_grad():
        for parameter in other.attention.parameters():
            parameter.mul_(1.5)  # a second member whose attention differs
    pair = AMACNNEnsemble(card.config, 2)
    pair.members[0].load_state_dict(single.state_dict())
    pair.members[1].load_state_dict(other.state_dict())
    save_model(pair, dataclasses.replace(card, name="pair", members=2), tmp_path / "pair")
    explainer = Explainer(str(tmp_path / "pair"))
    assert "mean of its 2 members' maps" in explainer.note
    face = face_like(3, np.random.default_rng(0), 96)
    batch = card.preprocess.to_tensor(card.preprocess.to_pixels(face)[None])
    with torch.no_grad():
        maps = [m.eval().forward_with_attention(batch)[1][0, 0] for m in (single, other)]
    assert not torch.allclose(maps[0], maps[1], atol=1e-3)
    size = card.preprocess.size
    expected = cv2.resize(((maps[0] + maps[1]) / 2).numpy(), (size, size), interpolation=cv2.INTER_CUBIC)
    assert np.allclose(explainer.explain(face).attention, np.clip(expected, 0, 1), atol=1e-4)


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
    assert "attention map (amacnn-fer2013: mean of its 4 members" in with_maps
    assert with_maps.count("data:image/jpeg") == without.count("data:image/jpeg") > 0
    assert with_maps != without
    refused = CliRunner().invoke(main, ["report", str(out), "--attention"])
    assert refused.exit_code == 2 and "give --html too" in refused.output
    other = CliRunner().invoke(main, [*args, "--attention", "--model", "amacnn-ferplus"])
    assert other.exit_code == 2 and "pass that model as --model" in other.output
