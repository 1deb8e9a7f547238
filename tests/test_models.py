"""Commands on trained models: `quantize`, `ensemble` (and soups) and `compare`."""

import json
import shutil

import pytest
from click.testing import CliRunner

from conftest import train_cli
from fer_mine.cli import main


@pytest.mark.parametrize(
    ("tolerance", "max_refined", "kept", "steps", "said"),
    [
        (1.0, 0.25, True, 20, "kept: run and evaluate use int8"),
        (-1.0, -1.0, False, 0, "not kept"),
        (-1.0, 1.0, True, 0, "kept with its close calls in float32"),  # int8 short, its close calls redone
    ],
)
def test_quantize_keeps_int8_only_within_tolerance_and_evaluate_then_uses_it(
    trained, tmp_path, monkeypatch, tolerance, max_refined, kept, steps, said
):
    from fer_mine.amacnn import quantize

    root, out, _ = trained
    model = tmp_path / "model"
    shutil.copytree(out, model)
    monkeypatch.setattr(quantize, "TOLERANCE", tolerance)  # the real rule: 0.1 point
    monkeypatch.setattr(quantize, "MAX_REFINED", max_refined)  # the real rule: a quarter of the faces
    result = CliRunner().invoke(
        main,
        [
            "quantize",
            "--model",
            str(model),
            "--data-root",
            str(root),
            "--threads",
            "1",
            "--qat-steps",
            str(steps),
        ],
    )
    assert result.exit_code == 0, result.output
    assert said in " ".join(result.output.split())
    assert ("refine_margin" in json.loads((model / "model.json").read_text())["int8"]) is (max_refined > 0.5)
    card = json.loads((model / "model.json").read_text())
    entry = card["int8"]
    assert entry["method"] == ("qat" if steps else "static") and f"({entry['method']})" in result.output
    assert entry["kept"] is kept and entry["validation"]["images"] == 7 and entry["validation"]["tta"] is True
    assert set(entry["validation"]) >= {"float32", "int8"}
    from fer_mine.media.hashing import sha256_of

    assert sha256_of(model / entry["file"]) == entry["sha256"]
    args = ["evaluate", "--model", str(model), "--data-root", str(root), "--dataset", "synth", "--record"]
    result = CliRunner().invoke(main, [*args, "--output", str(tmp_path / "ev")])
    assert result.exit_code == 0, result.output
    precision = "int8" if kept else "float32"
    assert f"{precision}) on synth/test" in result.output
    assert json.loads((tmp_path / "ev" / "metrics.json").read_text())["inference_precision"] == precision
    card = json.loads((model / "model.json").read_text())
    # int8 figures are filed with its calibration; the card's own stay those of float32
    assert ("synth/test" in card["int8"].get("metrics", {})) is kept
    if kept:
        assert card["metrics"] == json.loads((out / "model.json").read_text())["metrics"]


def test_ensemble_averages_members_and_is_scored_on_their_shared_validation_split(trained, tmp_path):
    import torch

    from fer_mine.amacnn.weights import load_model

    root, out, _ = trained
    other = tmp_path / "seed2"
    # another initialisation, same validation split: the way ensemble members are trained
    assert train_cli(root, other, 2, "--seed", "2").exit_code == 0
    ens = tmp_path / "ens"
    args = [
        "ensemble",
        str(out),
        str(other),
        "--name",
        "pair",
        "--output",
        str(ens),
        "--data-root",
        str(root),
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "pair (ensemble) +flip" in result.output and "val" in result.output
    card = json.loads((ens / "model.json").read_text())
    assert card["members"] == 2
    assert [m["name"] for m in card["training"]["ensemble_of"]] == ["amacnn", "amacnn"]
    assert card["training"]["images"]["val"] == 7  # the members' own validation split
    assert 0 <= card["metrics"]["synth/test+tta"]["accuracy"] <= 1
    assert card["training"]["weights_dtype"] == "float16"
    # stored as float16 by default: half the bytes of its two float32 members
    member_bytes = (out / "model.safetensors").stat().st_size + (other / "model.safetensors").stat().st_size
    assert (ens / "model.safetensors").stat().st_size < 0.55 * member_bytes
    pair, _ = load_model(ens)
    (a, _), (b, _) = load_model(out), load_model(other)
    x = torch.randn(5, 1, 32, 32)
    with torch.no_grad():
        expected = (a(x).softmax(1) + b(x).softmax(1)) / 2
        assert torch.allclose(pair(x).softmax(1), expected, atol=5e-3)
        assert not torch.allclose(a(x).softmax(1), b(x).softmax(1), atol=1e-3)
    info = CliRunner().invoke(main, ["model-info", "--model", str(ens)])
    assert "an ensemble of 2 networks" in info.output
    assert "4 epochs in all" in info.output  # two members of two epochs each


def test_ensemble_soup_is_one_network_with_the_members_weights_averaged(trained, tmp_path):
    import torch

    from fer_mine.amacnn.weights import load_model

    root, out, _ = trained
    tuned = tmp_path / "tuned"  # fine-tuned from the same weights: what a soup is for
    assert train_cli(root, tuned, 1, "--init", str(out), "--seed", "3").exit_code == 0
    soup = tmp_path / "soup"
    args = ["ensemble", str(out), str(tuned), "--soup", "--full", "--name", "s", "--output", str(soup)]
    result = CliRunner().invoke(main, [*args, "--data-root", str(root)])
    assert result.exit_code == 0, result.output
    assert "s (soup) +flip" in result.output
    card = json.loads((soup / "model.json").read_text())
    assert card["members"] == 1 and card["training"]["combined_by"] == "weights averaged"
    model, _ = load_model(soup, inference=False)
    (a, _), (b, _) = load_model(out, inference=False), load_model(tuned, inference=False)
    for key, value in model.state_dict().items():
        if value.is_floating_point():
            assert torch.allclose(value, (a.state_dict()[key] + b.state_dict()[key]) / 2, atol=1e-6), key
    assert not torch.equal(model.state_dict()["head.5.weight"], a.state_dict()["head.5.weight"])
    info = CliRunner().invoke(main, ["model-info", "--model", str(soup)])
    assert info.exit_code == 0 and "ensemble of" not in info.output and "(a soup)" in info.output


def test_members_cycled_from_one_start_record_its_lineage_once(trained, tmp_path):
    root, out, _ = trained
    members = [tmp_path / f"cycle{seed}" for seed in (4, 5)]
    for seed, member in enumerate(members, start=4):
        assert train_cli(root, member, 1, "--init", str(out), "--seed", str(seed)).exit_code == 0
    soup = tmp_path / "soup"
    args = [
        "ensemble",
        *map(str, members),
        "--soup",
        "--name",
        "s",
        "--output",
        str(soup),
        "--data-root",
        str(root),
    ]
    assert CliRunner().invoke(main, args).exit_code == 0
    starts = [
        m["training"]["init_from"]
        for m in json.loads((soup / "model.json").read_text())["training"]["ensemble_of"]
    ]
    assert starts[0]["sha256"] == starts[1]["sha256"]
    assert "training" in starts[0] and "training" not in starts[1]  # written once, then referred to
    info = CliRunner().invoke(main, ["model-info", "--model", str(soup)])
    assert "4 epochs in all" in info.output  # one each, and the start's two, counted once


def test_ensemble_refuses_members_validated_on_different_splits(trained, tmp_path):
    root, out, _ = trained
    other = tmp_path / "split3"
    assert train_cli(root, other, 1, "--split-seed", "3").exit_code == 0
    args = [
        "ensemble",
        str(out),
        str(other),
        "--name",
        "x",
        "--output",
        str(tmp_path / "e"),
        "--data-root",
        str(root),
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    assert "validated on different splits" in result.output and "Traceback" not in result.output


def test_compare_scores_each_model_with_and_without_flip_against_the_baseline(trained, tmp_path, monkeypatch):
    from fer_mine.commands import output as cli

    monkeypatch.setattr(cli.out, "width", 200)  # a wide terminal: one line per row
    root, out, _ = trained
    other = tmp_path / "seed3"
    assert train_cli(root, other, 2, "--seed", "3").exit_code == 0
    args = ["compare", str(out), str(other), "--data-root", str(root)]
    result = CliRunner().invoke(main, [*args, "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [(r["tta"], r["passes"]) for r in rows] == [(False, 1), (True, 2)] * 2
    # the baseline is the first model with run's flip TTA: no image splits it from itself
    assert [r["baseline"] for r in rows] == [False, True, False, False]
    assert (rows[1]["only_baseline"], rows[1]["only_this"], rows[1]["p_value"]) == (0, 0, 1.0)
    assert all(r["tests"] == {} for r in rows)  # test splits only when asked
    assert all(0 <= r["val_accuracy"] <= 1 for r in rows)
    shown = CliRunner().invoke(main, [*args, "--test"])
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    assert any("McNemar p" in line and "synth/test" in line for line in lines)
    assert sum("│ baseline" in line for line in lines) == 1  # one row is the baseline itself


def test_compare_scores_validation_pictures_under_another_label_set(trained, tmp_path, monkeypatch):
    import numpy as np

    from conftest import write_class_tree
    from fer_mine.amacnn.ensemble import validation_data
    from fer_mine.amacnn.predict import predict_split
    from fer_mine.amacnn.weights import load_model
    from fer_mine.commands import output as cli

    monkeypatch.setattr(cli.out, "width", 250)
    shared, out, _ = trained
    root = tmp_path / "data"
    shutil.copytree(shared / "synth", root / "synth")
    # the same training pictures under other labels, as FER+ relabels FER-2013: angry became disgust
    relabelled = root / "relabelled" / "train"
    shutil.copytree(root / "synth" / "train", relabelled)
    for picture in (relabelled / "angry").iterdir():
        picture.rename(relabelled / "disgust" / f"was-angry-{picture.name}")
    args = ["compare", str(out), str(out), "--data-root", str(root), "--other-labels", "relabelled"]
    result = CliRunner().invoke(main, [*args, "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    model, card = load_model(out)
    val = validation_data(card, root, log=lambda *a: None).val
    angry, disgust = card.labels.index("angry"), card.labels.index("disgust")
    theirs = np.where(val.labels == angry, disgust, val.labels)
    expected = (predict_split(model, val, card.preprocess, True) == theirs).mean()
    assert rows[1]["other_labels"]["images"] == len(val.labels)  # every validation picture found
    assert rows[1]["other_labels"]["accuracy"] == pytest.approx(expected)
    assert rows[1]["val_accuracy"] != pytest.approx(expected)  # angry pictures count as disgust there
    shown = CliRunner().invoke(main, args)
    assert "relabelled's labels" in shown.output
    wrong = CliRunner().invoke(main, [*args[:-1], "nowhere"])
    assert wrong.exit_code != 0 and "Traceback" not in wrong.output
    unrelated = root / "unrelated" / "train"  # other pictures altogether: nothing to score
    write_class_tree(unrelated, per_class=3, seed=9)
    none = CliRunner().invoke(main, [*args[:-1], "unrelated"])
    assert none.exit_code != 0 and "none of the validation pictures" in none.output


def test_compare_refuses_models_chosen_on_different_splits(trained, tmp_path):
    root, out, _ = trained
    other = tmp_path / "split4"
    assert train_cli(root, other, 1, "--split-seed", "4").exit_code == 0
    result = CliRunner().invoke(main, ["compare", str(out), str(other), "--data-root", str(root)])
    assert result.exit_code == 2
    assert "validated on different splits" in result.output and "Traceback" not in result.output


def test_mcnemar_counts_the_disagreements_and_tests_them_exactly():
    import numpy as np

    from fer_mine.amacnn.metrics import mcnemar_exact

    # ablation K's triple against J3: 29 images only J3 got right, 46 only the triple
    only_a = np.array([True] * 29 + [False] * 46 + [True] * 100)
    only_b = np.array([False] * 29 + [True] * 46 + [True] * 100)
    a, b, p = mcnemar_exact(only_a, only_b)
    assert (a, b) == (29, 46) and p == pytest.approx(0.0639, abs=1e-4)
    assert mcnemar_exact(only_a, only_a) == (0, 0, 1.0)
    assert mcnemar_exact(np.ones(20, bool), np.zeros(20, bool))[2] < 1e-5


def test_model_info_without_a_model_lists_presets_shipped_models_and_the_detector(monkeypatch):
    from fer_mine.commands import output

    monkeypatch.setattr(output.out, "width", 250)  # one line per fact
    result = CliRunner().invoke(main, ["model-info"])
    assert result.exit_code == 0, result.output
    for fact in (
        "AMACNN presets",
        "model amacnn-fer2013 (default)",
        "model amacnn-ferplus",
        "detector yunet-n",
    ):
        assert fact in result.output
    assert "media/weights/yunet-n/yunet_n_640_640.onnx" in result.output
