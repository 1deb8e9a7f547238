"""`fer-mine evaluate` on a user's own labelled folders: a test set alone, a bare set of class
folders, and uncropped photos through the detector (`--detect`), with the shipped model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from benchmarks.scenes import compose, save_jpeg
from conftest import write_class_tree
from fer_mine.cli import main


def evaluate(root: Path, dataset: str, out: Path, *extra: str):
    args = ["evaluate", "--data-root", str(root), "--dataset", dataset, "--output", str(out), *extra]
    return CliRunner().invoke(main, args)


def scored(out: Path) -> dict:
    return json.loads((out / "metrics.json").read_text())


def test_a_test_folder_alone_is_scored_whole(tmp_path):
    write_class_tree(tmp_path / "mine" / "test", per_class=2)
    result = evaluate(tmp_path, "mine", tmp_path / "ev")
    assert result.exit_code == 0, result.output
    assert scored(tmp_path / "ev")["images"] == 14
    result = evaluate(tmp_path, "mine", tmp_path / "ev-train", "--split", "train")
    assert result.exit_code == 2 and "has no 'train' split (has test, or all)" in result.output


def test_bare_class_folders_are_scored_whole_with_split_all(tmp_path):
    write_class_tree(tmp_path / "bare", per_class=5)
    assert evaluate(tmp_path, "bare", tmp_path / "part").exit_code == 0
    assert scored(tmp_path / "part")["images"] == 7  # the seeded 20% that training would hold out
    result = evaluate(tmp_path, "bare", tmp_path / "all", "--split", "all")
    assert result.exit_code == 0, result.output
    assert scored(tmp_path / "all")["images"] == 35


def test_an_unknown_emotion_folder_is_one_line(tmp_path):
    write_class_tree(tmp_path / "odd" / "test", per_class=1, names=("happy", "joyful"))
    result = evaluate(tmp_path, "odd", tmp_path / "ev")
    assert result.exit_code == 2
    assert "unknown emotion folder 'joyful'" in result.output and "Traceback" not in result.output


def test_detect_scores_the_largest_face_of_whole_photos_and_counts_the_rest(tmp_path):
    rng = np.random.default_rng(4)
    root = tmp_path / "photos"
    save_jpeg(compose(rng, 640, 480, [150]).image, root / "happy" / "one.jpg")
    save_jpeg(compose(rng, 640, 480, [150, 60]).image, root / "sad" / "two.jpg")
    save_jpeg(compose(rng, 640, 480, []).image, root / "neutral" / "none.jpg")
    result = evaluate(tmp_path, "photos", tmp_path / "ev", "--split", "all", "--detect")
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert "2 of 3 photos scored, 1 with no face (not scored), 1 with several" in said
    metrics = scored(tmp_path / "ev")
    assert metrics["images"] == 2
    found = metrics["detection"]
    assert (found["photos"], found["no_face"], found["several_faces"]) == (3, 1, 1)
    assert found["no_face_ids"] == ["none.jpg"]
    assert found["accuracy_all_photos"] == pytest.approx(metrics["accuracy"] * 2 / 3)


def test_evaluate_prints_table4_and_writes_json(trained, tmp_path):
    root, out, _ = trained
    args = [
        "evaluate",
        "--model",
        str(out),
        "--data-root",
        str(root),
        "--dataset",
        "synth",
        "--output",
        str(tmp_path / "ev"),
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "macro" in result.output and "surprise" in result.output and "accuracy" in result.output
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert metrics["images"] == 28
    assert sum(map(sum, metrics["confusion"])) == 28
    assert (tmp_path / "ev" / "confusion.png").stat().st_size > 1000
    as_json = CliRunner().invoke(main, [*args, "--json"])
    assert json.loads(as_json.stdout)["accuracy"] == metrics["accuracy"]


def test_calibrate_fits_a_temperature_that_run_evaluate_and_the_card_use(trained, tmp_path):
    """`calibrate` fits on the model's validation split and keeps T and the uncertain cut-off in
    the card; `evaluate` then reports ECE before and after and draws the reliability diagram."""
    root, out, _ = trained
    model = tmp_path / "model"
    shutil.copytree(out, model)
    fitted = CliRunner().invoke(main, ["calibrate", "--model", str(model), "--data-root", str(root)])
    assert fitted.exit_code == 0, fitted.output
    card = json.loads((model / "model.json").read_text())["calibration"]
    for key in ("plain", "tta"):
        assert card[key]["temperature"] > 0 and card[key]["temperature"] != 1.0
        assert card[key]["nll"][1] <= card[key]["nll"][0] + 1e-6  # fitted by NLL: never worse on its split
        assert 0 <= card[key]["uncertain_below"] <= 1
    args = ["evaluate", "--model", str(model), "--data-root", str(root), "--dataset", "synth", "--tta",
            "--output", str(tmp_path / "ev")]  # fmt: skip
    shown = CliRunner().invoke(main, args)
    assert shown.exit_code == 0, shown.output
    assert "ECE" in shown.output and f"temperature {card['tta']['temperature']:.3g}" in shown.output
    metrics = json.loads(CliRunner().invoke(main, [*args, "--json"]).stdout)
    assert metrics["ece"] == metrics["calibration"]["ece"]
    assert metrics["calibration"]["temperature"] == card["tta"]["temperature"]
    assert sum(b["faces"] for b in metrics["calibration"]["bins"]) == metrics["images"]
    assert (tmp_path / "ev" / "reliability.png").stat().st_size > 1000
