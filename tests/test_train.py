"""`fer-mine train` as a user runs it: what it writes, resuming, seeds, starting weights, teachers,
soft targets and datasets that share pictures."""

import json
import shutil

import pytest
from click.testing import CliRunner

from conftest import TRAIN, train_cli
from fer_mine.cli import main


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


def test_dataset_with_a_class_missing_is_refused(tmp_path):
    from conftest import write_class_tree

    write_class_tree(tmp_path / "d" / "gappy" / "train", 3, names=("happy", "sad"))
    result = CliRunner().invoke(
        main, [*TRAIN, "--data-root", str(tmp_path / "d"), "--output", str(tmp_path / "o")]
    )
    assert result.exit_code == 2
    assert "no training images for angry, disgust, fear, neutral, surprise" in result.output


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
