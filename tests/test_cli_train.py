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
    assert "fer-mine quantize --model" in " ".join(result.output.split())  # the way to int8, said
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


@pytest.mark.parametrize("tolerance, kept, steps", [(1.0, True, 20), (-1.0, False, 0)])
def test_quantize_keeps_int8_only_within_tolerance_and_evaluate_then_uses_it(
    trained, tmp_path, monkeypatch, tolerance, kept, steps
):
    from fer_mine.amacnn import quantize

    root, out, _ = trained
    model = tmp_path / "model"
    shutil.copytree(out, model)
    monkeypatch.setattr(quantize, "TOLERANCE", tolerance)  # the real rule: 0.1 point
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
    assert ("kept: run and evaluate use int8" in result.output) is kept
    card = json.loads((model / "model.json").read_text())
    entry = card["int8"]
    assert entry["method"] == ("qat" if steps else "static") and f"({entry['method']})" in result.output
    assert entry["kept"] is kept and entry["validation"]["images"] == 7 and entry["validation"]["tta"] is True
    assert set(entry["validation"]) >= {"float32", "int8"}
    from fer_mine.amacnn.weights import sha256_of

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
        (
            ["train", "--data-root", "{root}", "--teacher", "{missing}"],
            "nothing not found: give a model folder",
        ),
        (["train", "--data-root", "{root}", "--init", "{foreign}"], "not a fer-mine model card"),
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
    for verb in ("run", "train", "evaluate", "ensemble", "compare", "report", "query", "model-info"):
        assert verb in result.output


def test_teacher_adds_a_soft_target_loss_on_every_step(trained, tmp_path, monkeypatch):
    from fer_mine.amacnn import train as training

    root, out, _ = trained
    calls = []
    real = training.distillation_loss

    def spy(student, teacher, temperature):
        calls.append((teacher.detach().clone(), temperature))
        return real(student, teacher, temperature)

    monkeypatch.setattr(training, "distillation_loss", spy)
    result = train_cli(root, tmp_path / "student", 1, "--teacher", str(out), "--distill-temperature", "3")
    assert result.exit_code == 0, result.output
    assert len(calls) == 5  # 77 training images in batches of 16: every step
    assert all((t == 3 and logits.shape == (16, 7)) or len(logits) == 13 for logits, t in calls)
    teacher_card = json.loads((out / "model.json").read_text())
    card = json.loads((tmp_path / "student" / "model.json").read_text())
    assert card["training"]["teacher"] == {"name": "amacnn", "sha256": teacher_card["sha256"]}
    assert card["training"]["recipe"]["distill_temperature"] == 3


@pytest.mark.parametrize("optimizer, decoupled", [("adam", False), ("adamw", True)])
def test_optimizer_decides_how_weight_decay_is_applied(trained, tmp_path, monkeypatch, optimizer, decoupled):
    """--optimizer adamw decays each weight directly (AdamW) instead of through the gradient, the
    way Adam's L2 term zeroes BatchNorm scales; the card records which ran."""
    import torch

    root, _, _ = trained
    made = []

    def spy(cls):
        class Spy(cls):
            def __init__(self, params, **kwargs):
                made.append((cls, kwargs["weight_decay"]))
                super().__init__(params, **kwargs)

        return Spy

    monkeypatch.setattr(torch.optim, "Adam", spy(torch.optim.Adam))
    monkeypatch.setattr(torch.optim, "AdamW", spy(torch.optim.AdamW))
    args = ["--optimizer", optimizer, "--weight-decay", "0.05"]
    result = train_cli(root, tmp_path / optimizer, 1, *args)
    assert result.exit_code == 0, result.output
    assert [(c.__name__, d) for c, d in made] == [("AdamW" if decoupled else "Adam", 0.05)]
    card = json.loads((tmp_path / optimizer / "model.json").read_text())
    assert card["training"]["recipe"]["optimizer"] == optimizer


def test_distillation_loss_is_zero_for_a_student_that_matches_its_teacher():
    import torch

    from fer_mine.amacnn.train import distillation_loss

    logits = torch.randn(4, 7)
    assert distillation_loss(logits, logits, 2.0).item() == pytest.approx(0, abs=1e-6)
    assert distillation_loss(logits, torch.randn(4, 7), 2.0).item() > 0.01


@pytest.fixture
def loss_targets(monkeypatch) -> list:
    """The targets every training step's loss is computed against, in order."""
    from fer_mine.amacnn import train as training

    seen = []

    class Spy(training.HybridLoss):
        def forward(self, logits, target):
            seen.append(target.detach().clone())
            return super().forward(logits, target)

    monkeypatch.setattr(training, "HybridLoss", Spy)
    return seen


def _ferplus_tree(root, per_class: int = 6) -> None:
    """FER+ layout (train, test, valid): each image 7 votes for its class and 3 for the next one."""
    import cv2
    import numpy as np

    from conftest import face_like
    from fer_mine.amacnn.datasets import FERPLUS_COLUMNS
    from fer_mine.labels import ALIASES, EMOTIONS

    column = {ALIASES[c]: i for i, c in enumerate(FERPLUS_COLUMNS[:8])}
    rng = np.random.default_rng(0)
    for folder, count in (("FER2013Train", per_class), ("FER2013Test", 2), ("FER2013Valid", 2)):
        (root / folder).mkdir(parents=True)
        rows = []
        for k, emotion in enumerate(EMOTIONS):
            for i in range(count):
                name = f"fer{k:03d}{i:04d}.png"
                cv2.imwrite(str(root / folder / name), face_like(k, rng))
                votes = [0] * 10
                votes[column[emotion]] = 7
                votes[column[EMOTIONS[(k + 1) % 7]]] = 3
                rows.append(f'{name},"(0, 0, 48, 48)",' + ",".join(map(str, votes)))
        (root / folder / "label.csv").write_text("\n".join(rows) + "\n")


@pytest.mark.parametrize("targets", ["majority", "distribution", None])
def test_ferplus_distribution_targets_train_on_the_vote_shares(tmp_path, loss_targets, targets):
    """None: no --ferplus-targets, which trains on the vote shares (measured best, ablation J)."""
    import torch

    _ferplus_tree(tmp_path / "data" / "ferplus")
    args = [*TRAIN, "--data-root", str(tmp_path / "data"), "--datasets", "ferplus", "--epochs", "1",
            "--output", str(tmp_path / "run")] + (["--ferplus-targets", targets] if targets else [])  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    soft = [t for t in loss_targets if t.ndim == 2]
    if targets == "majority":
        assert not soft  # class indices
        return
    rows = torch.cat(soft)
    # every training target is 0.7 on the image's class and 0.3 on the next one
    assert torch.allclose(rows.sort(dim=1).values[:, -2:], torch.tensor([0.3, 0.7]).expand(len(rows), 2))
    card = json.loads((tmp_path / "run" / "model.json").read_text())
    assert card["training"]["recipe"]["ferplus_targets"] == "distribution"
    assert "ferplus/test" in card["metrics"]  # scored on the majority label, as published


def test_train_on_valid_adds_the_valid_split_to_training_and_keeps_validation(tmp_path):
    import shutil as sh

    root = tmp_path / "data"
    _ferplus_tree(root / "ferplus")
    valid, test = root / "ferplus" / "FER2013Valid", root / "ferplus" / "FER2013Test"
    sh.copy(test / "fer0000000.png", valid / "fer0000000.png")  # a valid picture that is a test picture
    args = [*TRAIN, "--data-root", str(root), "--epochs", "1"]
    images = {}
    for extra in ([], ["--train-on-valid"]):
        out = tmp_path / f"r{len(extra)}"
        result = CliRunner().invoke(main, [*args, "--datasets", "ferplus", "--output", str(out), *extra])
        assert result.exit_code == 0, result.output
        images[bool(extra)] = json.loads((out / "model.json").read_text())["training"]["images"]
    said = " ".join(result.output.split())
    assert (
        "ferplus/valid: 13 pictures join training; 1 are already in training, validation or a test split"
        in said
    )
    assert images[True] == images[False] | {"train": images[False]["train"] + 13}
    _ferplus_and_a_kaggle_copy(tmp_path / "k")
    refused = CliRunner().invoke(
        main, [*args, "--data-root", str(tmp_path / "k"), "--datasets", "kaggle", "--train-on-valid"]
    )
    assert refused.exit_code == 2 and "kaggle has no valid split" in refused.output


def _ferplus_and_a_kaggle_copy(root) -> None:
    """FER+ (`_ferplus_tree`) and `kaggle`: its pictures as JPEGs, each under the label after its
    FER+ majority (a noisier label, as FER-2013's), and 3 pictures a class that FER+ lacks."""
    import cv2
    import numpy as np

    from conftest import face_like
    from fer_mine.labels import EMOTIONS

    _ferplus_tree(root / "ferplus")
    rng = np.random.default_rng(5)
    for split, folder in (("train", "FER2013Train"), ("test", "FER2013Test")):
        for png in sorted((root / "ferplus" / folder).glob("*.png")):
            k = int(png.name[3:6])
            other = root / "kaggle" / split / EMOTIONS[(k + 1) % 7]
            other.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(
                str(other / f"{png.stem}.jpg"), cv2.imread(str(png), 0), [cv2.IMWRITE_JPEG_QUALITY, 90]
            )
    for k, emotion in enumerate(EMOTIONS):
        for i in range(3):
            cv2.imwrite(str(root / "kaggle" / "train" / emotion / f"own{i}.jpg"), face_like(k, rng))


def test_datasets_holding_the_same_pictures_train_on_each_picture_once(tmp_path):
    """`--datasets all` over FER-2013 and FER+: the same pictures, JPEG in one and PNG in the other,
    under labels that disagree. Each is used once, with the FER+ label."""
    root = tmp_path / "data"
    _ferplus_and_a_kaggle_copy(root)
    result = CliRunner().invoke(
        main,
        [
            *TRAIN,
            "--data-root",
            str(root),
            "--datasets",
            "all",
            "--epochs",
            "1",
            "--output",
            str(tmp_path / "r"),
        ],
    )
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert "kaggle/train: 42 pictures are also in ferplus; they are used once, labelled by ferplus" in said
    images = json.loads((tmp_path / "r" / "model.json").read_text())["training"]["images"]
    assert images["train"] + images["val"] == 42 + 21  # FER+'s 42 once, and the Kaggle copy's own 21


def test_votes_from_another_dataset_blend_into_the_targets_of_the_same_pictures(tmp_path, loss_targets):
    """FER-2013 trained with FER+'s votes for its pictures: (1 - W) x own label + W x votes."""
    import torch

    root = tmp_path / "data"
    _ferplus_and_a_kaggle_copy(root)
    args = [*TRAIN, "--data-root", str(root), "--datasets", "kaggle", "--epochs", "1"]
    weighted = [*args, "--votes-from", "ferplus", "--votes-weight", "0.4", "--output", str(tmp_path / "r")]
    result = CliRunner().invoke(main, weighted)
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert "42 of 63 training pictures are in ferplus too" in said
    rows = torch.cat([t for t in loss_targets if t.ndim == 2]).sort(dim=1).values[:, -2:]
    # own label (FER+'s second choice, 3 votes of 10) 0.6 + 0.4 x 0.3; FER+'s majority 0.4 x 0.7
    blended = torch.isclose(rows, torch.tensor([0.28, 0.72])).all(1)
    alone = torch.isclose(rows, torch.tensor([0.0, 1.0])).all(1)
    assert blended.any() and alone.any() and (blended | alone).all()
    card = json.loads((tmp_path / "r" / "model.json").read_text())
    assert card["training"]["recipe"]["votes_from"] == "ferplus"
    assert list(card["metrics"]) == ["kaggle/test"]  # scored on its own labels only
    for extra, message in (
        (["--votes-from", "kaggle"], "one of the trained --datasets"),
        (["--votes-from", "nowhere"], "not in"),
        (["--votes-from", "all"], "--votes-from all: name one dataset"),
        (
            ["--votes-from", "ferplus", "--ferplus-targets", "majority"],
            "needs --ferplus-targets distribution",
        ),
    ):
        refused = CliRunner().invoke(main, [*args, "--output", str(tmp_path / "x"), *extra])
        assert refused.exit_code == 2 and message in refused.output, refused.output


def test_compare_scores_each_model_with_and_without_flip_against_the_baseline(trained, tmp_path, monkeypatch):
    from fer_mine import cli

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
    from fer_mine import cli
    from fer_mine.amacnn.ensemble import validation_data
    from fer_mine.amacnn.train import predict_split
    from fer_mine.amacnn.weights import load_model

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
