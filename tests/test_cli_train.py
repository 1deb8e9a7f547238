"""train -> evaluate round trip through the CLI, as a user runs it."""

import json
import shutil

import pytest
from click.testing import CliRunner

from fer_mine.cli import main

TRAIN = ["train", "--preset", "tiny", "--batch-size", "16", "--threads", "1", "--seed", "1"]


def train_cli(root, out, epochs: int, *extra: str):
    """`fer-mine train` on the synthetic dataset, tiny preset, as a user would call it."""
    args = [
        *TRAIN,
        "--data-root",
        str(root),
        "--datasets",
        "synth",
        "--epochs",
        str(epochs),
        "--output",
        str(out),
    ]
    return CliRunner().invoke(main, [*args, *extra])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from conftest import write_class_tree

    root = tmp_path_factory.mktemp("d") / "data"
    write_class_tree(root / "synth" / "train", per_class=12, seed=1)
    write_class_tree(root / "synth" / "test", per_class=4, seed=2)
    out = root.parent / "run"
    result = train_cli(root, out, 2)
    assert result.exit_code == 0, result.output
    return root, out, result


def test_train_writes_weights_card_history_and_plots(trained):
    _, out, result = trained
    for name in (
        "model.safetensors",
        "model.json",
        "history.csv",
        "training-curves.png",
        "confusion-synth-test.png",
        "checkpoint.pt",
    ):
        assert (out / name).is_file(), name
    card = json.loads((out / "model.json").read_text())
    assert card["labels"] == ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]
    assert card["preset"] == "tiny" and card["preprocess"]["size"] == 32
    assert card["training"]["images"] == {"train": 77, "val": 7, "synth/test": 28}
    assert card["training"]["recipe"]["lr"] == 5e-4  # the paper's recipe by default
    assert 0 <= card["metrics"]["synth/test"]["accuracy"] <= 1
    assert len((out / "history.csv").read_text().splitlines()) == 3
    assert "synth/test" in result.output


def test_resume_continues_from_the_checkpoint(trained, tmp_path):
    root, out, _ = trained
    copy = tmp_path / "run"
    shutil.copytree(out, copy)
    result = train_cli(root, copy, 3, "--resume")
    assert result.exit_code == 0, result.output
    assert "resuming after epoch 2" in result.output
    history = (copy / "history.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in history[1:]] == ["1", "2", "3"]
    assert history[1:3] == (out / "history.csv").read_text().splitlines()[1:3]


def test_a_run_started_from_other_weights_records_them_in_its_card_also_after_resume(trained, tmp_path):
    root, out, _ = trained
    source = json.loads((out / "model.json").read_text())
    tuned = tmp_path / "tuned"
    result = train_cli(root, tuned, 1, "--init", str(out))
    assert result.exit_code == 0, result.output
    assert f"starting from the weights of amacnn ({source['sha256'][:12]})" in result.output
    assert train_cli(root, tuned, 2, "--resume").exit_code == 0
    lineage = json.loads((tuned / "model.json").read_text())["training"]["init_from"]
    assert lineage["sha256"] == source["sha256"]
    assert lineage["training"]["epochs_run"] == 2
    info = CliRunner().invoke(main, ["model-info", "--model", str(tuned)])
    assert "4 epochs in all" in info.output  # its own two and the two of the run it started from


def test_same_seed_gives_the_same_run(trained, tmp_path):
    root, out, _ = trained
    result = train_cli(root, tmp_path / "again", 2)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "again" / "history.csv").read_text().split("\n")[1].split(",")[:5] == (
        out / "history.csv"
    ).read_text().split("\n")[1].split(",")[:5]


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


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "--data-root", "{missing}"], "data root not found"),
        (["train", "--data-root", "{root}", "--datasets", "nope"], "dataset nope not in"),
        (["train", "--data-root", "{root}", "--preset", "huge"], "Invalid value for '--preset'"),
        (
            ["evaluate", "--data-root", "{root}", "--dataset", "synth", "--model", "{foreign}"],
            "not a fer-mine model card",
        ),
        (
            [
                "evaluate",
                "--data-root",
                "{root}",
                "--dataset",
                "synth",
                "--split",
                "valid",
                "--model",
                "{model}",
            ],
            "has no 'valid' split",
        ),
        (["run"], "Missing option '--input'"),
        # Beam would drop an option it does not know with a warning: a typo must not pass silently
        (["run", "--input", "{root}", "--output", "{missing}", "--thread", "2"], "unknown option --thread"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(trained, tmp_path, args, message):
    root, out, _ = trained
    foreign = tmp_path / "model.json"
    foreign.write_text('{"hello": 1}')
    values = {"missing": tmp_path / "nothing", "root": root, "foreign": foreign, "model": out}
    result = CliRunner().invoke(main, [a.format(**values) for a in args])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_dataset_with_a_class_missing_is_refused(tmp_path):
    from conftest import write_class_tree

    write_class_tree(tmp_path / "d" / "gappy" / "train", 3, names=("happy", "sad"))
    result = CliRunner().invoke(
        main, [*TRAIN, "--data-root", str(tmp_path / "d"), "--output", str(tmp_path / "o")]
    )
    assert result.exit_code == 2
    assert "no training images for angry, disgust, fear, neutral, surprise" in result.output


def test_help_lists_every_verb():
    result = CliRunner().invoke(main, ["--help"])
    for verb in ("run", "train", "evaluate", "ensemble", "report", "query", "model-info"):
        assert verb in result.output
