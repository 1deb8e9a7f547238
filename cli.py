"""`fer-mine`: the command-line entry point (a Click group, one subcommand per verb)."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from fer_mine.amacnn.presets import PRESETS
from fer_mine.amacnn.recipe import FERPLUS_TARGETS, OPTIMIZERS, QAT_STEPS, SCHEDULES, TrainOptions
from fer_mine.errors import FerMineError
from fer_mine.pipeline.defaults import (
    DEFAULT_ALIGN,
    DEFAULT_DETECTOR,
    DEFAULT_MARGIN,
    DEFAULT_PRECISION,
    DEFAULT_SIZES,
    DEFAULT_THRESHOLDS,
    DEFAULT_TTA,
    DEFAULT_VIDEO_FPS,
    DEFAULT_WORKER_MODE,
    DETECTORS,
    PRECISIONS,
    VIDEO_EXTENSIONS,
    WORKER_MODES,
    describe,
)
from fer_mine.sql import ReportParams

RECIPE = TrainOptions()  # `fer-mine train`'s defaults

# Beam logs this at import on every machine without Google Cloud extras; it concerns no user.
logging.getLogger().addFilter(lambda record: "apitools not found" not in record.getMessage())

console = Console(stderr=True)
out = Console()

MODEL_OPTION = click.option(
    "--model",
    "model_path",
    help="Model folder or model.json, or a shipped model's name (default: amacnn-fer2013; see model-info).",
)
# The classifier's arithmetic: shared by `run` and `evaluate`, so evaluate measures what run does
PRECISION_OPTION = click.option(
    "--precision",
    type=click.Choice(PRECISIONS),
    default=DEFAULT_PRECISION,
    show_default=True,
    help="Classifier arithmetic: auto is int8 on the CPU where the model card keeps its int8 network "
    "(`fer-mine quantize`: within 0.1 point of float32 on validation, 4-5x the faces/s), else float32.",
)
# How faces are cut: shared by `run` and `explain`, which must cut them alike
MARGIN_OPTION = click.option(
    "--margin",
    type=click.FloatRange(-0.2, 1.0),
    default=DEFAULT_MARGIN,
    show_default=True,
    help="Crop margin around each face box, per side, as a share of its size "
    "(chosen with benchmarks/pipeline_accuracy.py).",
)
ALIGN_OPTION = click.option(
    "--align/--no-align",
    default=DEFAULT_ALIGN,
    show_default=True,
    help="Rotate each face crop so that the eyes are level (needs landmarks: yunet).",
)
ALIGNED_OPTION = click.option(
    "--aligned", is_flag=True, help="Each image is one already-cropped face (FER-2013 style): no detection."
)
DATA_ROOT_HELP = "Folder holding one folder per dataset (default: $FER_MINE_DATA)."


class FerMineGroup(click.Group):
    """Turns FerMineError into a one-line message and exit code 2, never a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except FerMineError as exc:
            console.print(f"[red]Error:[/red] {exc}", highlight=False, soft_wrap=True)
            ctx.exit(2)


def _shipped_model_line() -> str:
    """One line on the model fer-mine runs by default, read from its card (JSON only, no torch)."""
    from fer_mine.amacnn.catalog import default_card_json

    card = default_card_json()
    if card is None:
        return "No shipped model found: pass --model."
    metrics = card.get("metrics", {})
    private = metrics.get("fer2013/test", {}).get("PrivateTest", {}).get("accuracy")
    with_tta = metrics.get("fer2013/test+tta", {}).get("PrivateTest", {}).get("accuracy")
    score = f", FER-2013 PrivateTest accuracy {private:.1%}" if private else ""
    score += f" ({with_tta:.1%} with the flip TTA `run` uses)" if with_tta else ""
    return f"Default model: {card['name']} (sha256 {card['sha256'][:12]}){score}. See `fer-mine model-info`."


@click.group(
    cls=FerMineGroup,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog=_shipped_model_line(),
)
@click.version_option(package_name="fer-mine")
def main() -> None:
    """Mine facial-emotion patterns from image archives.

    \b
      fer-mine run --input photos/ --output mined/   find faces, classify, write Parquet
      fer-mine report mined/                          emotion-pattern reports (DuckDB SQL)
      fer-mine query mined/ "SELECT ..."              ad-hoc SQL over the mined tables
      fer-mine train --datasets all                   train the AMACNN network
      fer-mine evaluate --dataset fer2013             accuracy, P/R/F1, confusion matrix
      fer-mine model-info                             presets and the shipped model
    """


def _data_root(value: Path | None) -> Path:
    from fer_mine.amacnn.datasets import DATA_ROOT_ENV, default_data_root

    root = value or default_data_root()
    if root is None:
        raise FerMineError(f"no data root: pass --data-root DIR or set ${DATA_ROOT_ENV}")
    return root


def _threads(threads: int | None) -> None:
    import os

    import torch

    torch.set_num_threads(threads or os.cpu_count() or 1)


@main.command()
@click.option("--data-root", type=click.Path(path_type=Path), help=DATA_ROOT_HELP)
@click.option(
    "--datasets",
    "dataset_names",
    default="all",
    show_default=True,
    help="Comma list of dataset folders, or 'all' (every dataset under the data root).",
)
@click.option(
    "--preset",
    type=click.Choice(list(PRESETS)),
    default=RECIPE.preset,
    show_default=True,
    help="Network size; `fer-mine model-info` lists parameters and MACs of each.",
)
@click.option("--epochs", type=click.IntRange(1), default=RECIPE.epochs, show_default=True)
@click.option("--batch-size", type=click.IntRange(1), default=RECIPE.batch_size, show_default=True)
@click.option("--lr", type=click.FloatRange(0, min_open=True), default=RECIPE.lr, show_default=True)
@click.option("--weight-decay", type=click.FloatRange(0), default=RECIPE.weight_decay, show_default=True)
@click.option(
    "--optimizer",
    type=click.Choice(OPTIMIZERS),
    default=RECIPE.optimizer,
    show_default=True,
    help="adam applies --weight-decay as an L2 gradient (the paper's), which can switch BatchNorm "
    "channels off; adamw decouples it (README, ablation R).",
)
@click.option(
    "--patience",
    type=click.IntRange(1),
    default=RECIPE.patience,
    show_default=True,
    help="Early stopping: epochs without a better validation accuracy.",
)
@click.option(
    "--schedule",
    type=click.Choice(SCHEDULES),
    default=RECIPE.schedule,
    show_default=True,
    help="Learning-rate schedule (the paper: constant).",
)
@click.option("--warmup-epochs", type=click.IntRange(0), default=RECIPE.warmup_epochs, show_default=True)
@click.option(
    "--label-smoothing", type=click.FloatRange(0, 0.5), default=RECIPE.label_smoothing, show_default=True
)
@click.option(
    "--mixup",
    type=click.FloatRange(0),
    default=RECIPE.mixup,
    show_default=True,
    help="Mixup Beta(a, a) parameter; 0 turns it off.",
)
@click.option(
    "--augment",
    type=click.FloatRange(0),
    default=RECIPE.augment,
    show_default=True,
    help="Augmentation strength; 0 turns augmentation off.",
)
@click.option("--ce-weight", type=click.FloatRange(0), default=RECIPE.ce_weight, show_default=True)
@click.option("--focal-weight", type=click.FloatRange(0), default=RECIPE.focal_weight, show_default=True)
@click.option(
    "--tta/--no-tta", default=RECIPE.tta, help="Flip test-time augmentation in the final evaluation."
)
@click.option("--keep-contempt", is_flag=True, help="FER+: keep contempt as an 8th class.")
@click.option(
    "--ferplus-targets",
    type=click.Choice(FERPLUS_TARGETS),
    default=RECIPE.ferplus_targets,
    show_default=True,
    help="FER+: train on the 10 annotators' vote distribution as soft targets (measured +3.1 points "
    "of validation), or on the majority label. Evaluation scores the majority label either way.",
)
@click.option(
    "--votes-from",
    default=RECIPE.votes_from,
    metavar="DATASET",
    help="Blend the annotator votes that DATASET (under --data-root) holds for the same pictures "
    "into the training targets, as FER+ does for FER-2013's; validation and tests keep the trained "
    "dataset's labels.",
)
@click.option(
    "--votes-weight",
    type=click.FloatRange(0, 1),
    default=RECIPE.votes_weight,
    show_default=True,
    help="With --votes-from: targets are (1 - W) x the picture's own label + W x the vote distribution.",
)
@click.option(
    "--train-on-valid",
    is_flag=True,
    help="Also train on each dataset's own valid split (FER+'s FER2013Valid, 3,370 pictures). "
    "Validation is still carved from train, so the validation pictures do not change.",
)
@click.option(
    "--val-fraction", type=click.FloatRange(0.01, 0.5), default=RECIPE.val_fraction, show_default=True
)
@click.option(
    "--seed",
    type=int,
    default=RECIPE.seed,
    show_default=True,
    help="Seed of initial weights and batch order.",
)
@click.option(
    "--split-seed",
    type=int,
    default=RECIPE.split_seed,
    show_default=True,
    help="Seed of the validation split; keep it fixed across models you will ensemble.",
)
@click.option("--threads", type=click.IntRange(1), help="CPU threads (default: all cores).")
@click.option(
    "--time-limit",
    type=click.FloatRange(0),
    default=RECIPE.time_limit_min,
    help="Stop after this many minutes.",
)
@click.option("--device", help="torch device (default: cuda when available, else cpu).")
@click.option("--name", default=RECIPE.name, show_default=True, help="Model name in its card.")
@click.option(
    "--output",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("runs/amacnn"),
    show_default=True,
)
@click.option("--resume", is_flag=True, help="Continue from the checkpoint in --output.")
@click.option(
    "--init",
    "init_from",
    default="",
    help="Start from these weights (a model folder or a shipped model's name) instead of random ones.",
)
@click.option(
    "--init-member",
    type=click.IntRange(0),
    callback=lambda ctx, param, value: -1 if value is None else value,
    help="With an ensemble as --init: start from this member (0 = the first).",
)
@click.option(
    "--teacher",
    default="",
    help="Distil from this model (folder or shipped name, an ensemble too): adds a soft-target loss "
    "on the same augmented batch.",
)
@click.option(
    "--distill-weight",
    type=click.FloatRange(0, 1),
    default=RECIPE.distill_weight,
    show_default=True,
    help="With --teacher: share of the loss that is the soft-target term.",
)
@click.option(
    "--distill-temperature",
    type=click.FloatRange(0, min_open=True),
    default=RECIPE.distill_temperature,
    show_default=True,
    help="With --teacher: softmax temperature of teacher and student.",
)
def train(data_root, dataset_names, threads, device, output, resume, time_limit, **recipe) -> None:
    """Train AMACNN (the paper's recipe by default) and evaluate it on each test split.

    Writes into --output: model.safetensors + model.json (the model card), history.csv,
    training-curves.png, confusion-<dataset>-test.png and checkpoint.pt (for --resume).
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from fer_mine.amacnn.datasets import resolve_datasets, resolve_one
    from fer_mine.amacnn.model import pick_device
    from fer_mine.amacnn.train import train as run_training
    from fer_mine.amacnn.weights import verify_weights

    _threads(threads)
    root = _data_root(data_root)
    for option in ("init_from", "teacher"):  # a typo or a damaged file, before minutes of decoding
        if recipe[option]:
            verify_weights(recipe[option])
    datasets, notes = resolve_datasets(root, dataset_names, recipe["split_seed"], recipe["keep_contempt"])
    for note in notes:
        console.print(note)
    votes = None
    if recipe["votes_from"]:
        if recipe["votes_from"] in {d.name for d in datasets}:
            raise FerMineError(f"--votes-from {recipe['votes_from']}: it is one of the trained --datasets")
        votes = resolve_one(
            root, recipe["votes_from"], "--votes-from", recipe["split_seed"], recipe["keep_contempt"]
        )
    options = TrainOptions(**recipe, time_limit_min=time_limit, datasets=[d.name for d in datasets])
    torch_device = pick_device(device)
    console.print(
        f"training preset [bold]{options.preset}[/bold] on {torch_device} with {', '.join(options.datasets)}"
    )
    with Progress(
        TextColumn("epoch {task.fields[epoch]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.4f} acc {task.fields[acc]:.3f}"),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    ) as bar:
        task = bar.add_task("train", total=1, epoch=0, loss=0.0, acc=0.0)

        def on_step(epoch: int, step: int, steps: int, loss: float, acc: float) -> None:
            bar.update(task, completed=step, total=steps, epoch=epoch + 1, loss=loss, acc=acc)

        card = run_training(
            datasets, output, options, resume, torch_device, on_step, bar.console.print, votes
        )
    _print_card_metrics(card.metrics)
    _model_written(output, card)


def _model_written(output: Path, card) -> None:
    console.print(
        f"model written to {output} (sha256 {card.sha256[:12]}); for int8 on the CPU (4x the faces/s "
        f"where as accurate): fer-mine quantize --model {output}"
    )


def _print_card_metrics(metrics: dict) -> None:
    if not metrics:
        return
    table = Table("split", "images", "accuracy", "macro P", "macro R", "macro F1")
    for key, m in metrics.items():
        rows = [(key, m)] + [
            (f"{key} [{k}]", v) for k, v in m.items() if isinstance(v, dict) and "accuracy" in v
        ]
        for name, r in rows:
            table.add_row(
                name,
                str(r["images"]),
                f"{r['accuracy']:.2%}",
                f"{r['macro_precision']:.3f}",
                f"{r['macro_recall']:.3f}",
                f"{r['macro_f1']:.3f}",
            )
    out.print(table)


@main.command()
@MODEL_OPTION
@click.option("--data-root", type=click.Path(path_type=Path), help=DATA_ROOT_HELP)
@click.option("--dataset", required=True, help="Dataset folder name under the data root.")
@click.option(
    "--split",
    default="test",
    show_default=True,
    help="Split to evaluate (train, valid, test), or all: every image of the dataset.",
)
@click.option("--tta/--no-tta", default=False, help="Average with the horizontally flipped image.")
@click.option(
    "--detect",
    is_flag=True,
    help="The images are whole photos: find and cut each face as fer-mine run does, and score "
    "the largest one (photos without a face are counted, not scored).",
)
@click.option(
    "--output",
    type=click.Path(path_type=Path, file_okay=False),
    help="Folder for metrics JSON and confusion PNG (default: eval-<dataset>-<split>).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON on stdout.")
@click.option("--record", is_flag=True, help="Also store the figures in the model card.")
@click.option("--threads", type=click.IntRange(1))
@click.option("--device", help="torch device (default: cuda when available, else cpu).")
@PRECISION_OPTION
def evaluate(
    model_path, data_root, dataset, split, tta, detect, output, as_json, record, threads, device, precision
) -> None:
    """Accuracy, macro and per-class precision/recall/F1, and a confusion matrix (paper's Table 4).

    \b
    DATASET is a folder under --data-root: FER-2013 or FER+ as published, or your own
    labelled photos as <emotion>/ folders, bare or inside train/, valid/ or test/.
    """
    from fer_mine.amacnn.catalog import CARD_FILE
    from fer_mine.amacnn.datasets import load_split, read_dataset
    from fer_mine.amacnn.metrics import plot_confusion
    from fer_mine.amacnn.model import pick_device
    from fer_mine.amacnn.quantize import resolve_precision
    from fer_mine.amacnn.train import evaluate_loaded, summarize_metrics
    from fer_mine.amacnn.weights import load_model as load
    from fer_mine.amacnn.weights import read_card, write_card

    _threads(threads)
    root = _data_root(data_root)
    device = str(pick_device(device))
    model, card = load(model_path, device=device, precision=precision)
    precision = resolve_precision(precision, card, device)  # what `auto` chose, for the report
    data = read_dataset(root / dataset, keep_contempt="contempt" in card.labels)
    chosen = data.split(split)
    crop = None
    if detect:
        from fer_mine.pipeline.detect import DetectorSettings, largest_face_cropper

        crop = largest_face_cropper(DetectorSettings(), DEFAULT_MARGIN, DEFAULT_ALIGN)
    with console.status(f"{'detecting faces in' if detect else 'decoding'} {dataset}/{split}"):
        loaded = load_split(chosen, card.preprocess, card.labels, crop)
    if not len(loaded.ids):
        found = "faces" if detect and loaded.no_face else "readable images"
        raise FerMineError(f"no {found} in {dataset}/{split}")
    with console.status(f"evaluating {card.name} on {len(loaded.ids)} images"):
        metrics = evaluate_loaded(model, loaded, card.preprocess, card.labels, tta)
    metrics.update(
        model=card.name,
        sha256=card.sha256,
        dataset=dataset,
        split=split,
        tta=tta,
        inference_precision=precision,
        skipped=loaded.skipped,
    )
    if detect:
        photos = len(loaded.ids) + len(loaded.no_face)
        metrics["detection"] = {
            "photos": photos, "scored": len(loaded.ids), "no_face": len(loaded.no_face),
            "several_faces": loaded.several_faces, "no_face_ids": loaded.no_face,
            # a photo without a face counts as wrong: what `fer-mine run` gets right end to end
            "accuracy_all_photos": metrics["accuracy"] * len(loaded.ids) / photos,
        }  # fmt: skip
    folder = output or Path(f"eval-{dataset}-{split}")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    plot_confusion(metrics, folder / "confusion.png", f"{card.name} on {dataset}/{split}")
    if record:
        key = f"{dataset}/{split}" + ("+detect" if detect else "") + ("+tta" if tta else "")
        if precision == "int8":  # the card's own metrics are float32's; int8's live with its calibration
            card.int8.setdefault("metrics", {})[key] = summarize_metrics(metrics)
        else:
            card.metrics[key] = summarize_metrics(metrics)
        card_path = read_card(model_path)[1].with_name(CARD_FILE)
        write_card(card, card_path)
    if as_json:
        click.echo(json.dumps(metrics, indent=2))
        return
    if loaded.skipped:
        console.print(f"[yellow]skipped {len(loaded.skipped)} unreadable images[/yellow]")
    if detect:
        found = metrics["detection"]
        console.print(
            f"faces found by {DEFAULT_DETECTOR}: {found['scored']} of {found['photos']} photos scored, "
            f"{found['no_face']} with no face (not scored), {found['several_faces']} with several (the "
            f"largest scored); counting faceless photos as wrong: {found['accuracy_all_photos']:.2%}"
        )
    _print_table4(
        metrics,
        f"{card.name} ({card.sha256[:12]}, {precision}) on {dataset}/{split}" + (" +TTA" if tta else ""),
    )
    for name, sub in metrics.get("subsets", {}).items():
        _print_table4(sub, f"... {name} only")
    console.print(f"metrics and confusion matrix written to {folder}/")


@main.command()
@click.argument("models", nargs=-1, required=True)
@click.option("--name", required=True, help="Name of the combined model (ensemble or soup) in its card.")
@click.option(
    "--output",
    type=click.Path(path_type=Path, file_okay=False),
    required=True,
    help="Folder for the combined model's weights, card and confusion PNGs.",
)
@click.option("--data-root", type=click.Path(path_type=Path), help=DATA_ROOT_HELP)
@click.option(
    "--half/--full",
    default=True,
    show_default=True,
    help="Store the weights as float16 (half the file; loading casts back to float32, and the "
    "figures printed are those of the rounded weights) or as float32.",
)
@click.option(
    "--soup",
    is_flag=True,
    help="Average the members' weights into one network (one forward pass per face) instead of "
    "averaging their probabilities; for members fine-tuned from the same weights.",
)
@click.option("--threads", type=click.IntRange(1))
def ensemble(models, name, output, data_root, half, soup, threads) -> None:
    """Combine trained MODELS (folders or shipped names) into one model that averages their
    probabilities (or, with --soup, their weights), and compare it with each member on the shared
    validation split and the tests.

    Members must have been trained with the same --split-seed and datasets, so the validation
    figures, the only ones to choose by, stay clean.
    """
    from fer_mine.amacnn.catalog import CARD_FILE
    from fer_mine.amacnn.ensemble import combine, score_on, validation_data
    from fer_mine.amacnn.metrics import plot_confusion
    from fer_mine.amacnn.train import summarize_metrics
    from fer_mine.amacnn.weights import load_model as load
    from fer_mine.amacnn.weights import write_card

    _threads(threads)
    root = _data_root(data_root)
    loaded = [load(path, inference=False) for path in models]  # combine copies their layers
    combined, card = combine(loaded, name, output, log=console.print, half=half, soup=soup)
    with console.status("decoding the validation and test splits"):
        data = validation_data(card, root, log=console.print)
    members = {c.name + f" ({c.sha256[:8]})": m for m, c in loaded}
    ours_name = f"{name} ({'soup' if soup else 'ensemble'})"
    with console.status(f"evaluating {len(members)} members and the combined model"):
        scores = score_on({**members, ours_name: combined}, data, card)
    any_scores = next(iter(scores.values()))
    columns = [(key, None) for key in any_scores] + [
        (key, sub) for key in data.tests for sub in any_scores[key].get("subsets", {})
    ]
    table = Table("model", *(f"{k} [{s}]" if s else k for k, s in columns), title="accuracy (choose by val)")
    for model_name, per_split in scores.items():
        cells = [per_split[k]["subsets"][s] if s else per_split[k] for k, s in columns]
        table.add_row(model_name, *(f"{c['accuracy']:.2%}" for c in cells))
    out.print(table)
    ours = scores[ours_name], scores[ours_name + " +flip"]
    card.training["images"] = data.counts
    card.training["best_val_accuracy"] = round(ours[0]["val"]["accuracy"], 4)
    card.training["val_accuracy_with_flip"] = round(ours[1]["val"]["accuracy"], 4)
    for key in data.tests:
        card.metrics[key] = summarize_metrics(ours[0][key])
        card.metrics[key + "+tta"] = summarize_metrics(ours[1][key])
        plot_confusion(ours[0][key], output / f"confusion-{key.replace('/', '-')}.png", f"{name} on {key}")
    write_card(card, output / CARD_FILE)
    _model_written(output, card)


@main.command()
@click.argument("models", nargs=-1, required=True)
@click.option("--data-root", type=click.Path(path_type=Path), help=DATA_ROOT_HELP)
@click.option(
    "--test",
    "with_tests",
    is_flag=True,
    help="Also print test accuracies: to report a choice made on validation, never to make one.",
)
@click.option(
    "--other-labels",
    metavar="DATASET",
    help="Also score the validation pictures under DATASET's labels for them (ferplus, for models "
    "trained on FER-2013): a gain on noisy labels that is a loss on cleaner ones fits their noise.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON.")
@click.option("--threads", type=click.IntRange(1))
def compare(models, data_root, with_tests, other_labels, as_json, threads) -> None:
    """Choose between MODELS (folders or shipped names) on their shared validation split.

    Each is scored without and with flip TTA beside its cost in forward passes per face, and
    tested against the first model with the TTA `run` uses (exact McNemar test on the images the
    two score differently): a row is better or worse than that baseline only when p < 0.05.
    """
    from dataclasses import asdict

    from fer_mine.amacnn.compare import compare as compare_models
    from fer_mine.amacnn.compare import other_label_split
    from fer_mine.amacnn.ensemble import check_shared_split, validation_data
    from fer_mine.amacnn.weights import load_model as load

    _threads(threads)
    root = _data_root(data_root)
    loaded = [load(path) for path in models]
    check_shared_split([card for _, card in loaded])
    with console.status("decoding the validation" + (" and test splits" if with_tests else " split")):
        data = validation_data(loaded[0][1], root, log=console.print)
    other = None
    if other_labels:
        with console.status(f"decoding {other_labels}'s pictures to find the validation ones"):
            other = other_label_split(loaded[0][1], root, other_labels)
    with console.status(f"scoring {len(loaded)} model(s), without and with flip"):
        rows = compare_models(loaded, data, DEFAULT_TTA, with_tests, other)
    if as_json:
        click.echo(json.dumps([asdict(r) | {"verdict": r.verdict} for r in rows], indent=2))
        return
    tests = list(rows[0].tests)
    held = f"val, {other_labels}'s labels ({rows[0].other_labels['images']:,})" if other else None
    table = Table(
        "model",
        "flip",
        "passes/face",
        f"val ({len(data.val.labels)})",
        "only baseline right",
        "only this right",
        "McNemar p",
        "vs baseline",
        *((held, "its McNemar p") if held else ()),
        *tests,
        title="choose by validation; baseline: the first model" + (" with flip" if DEFAULT_TTA else ""),
    )
    for r in rows:
        table.add_row(
            r.model,
            "yes" if r.tta else "no",
            str(r.passes),
            f"{r.val_accuracy:.2%}",
            *(
                ("-", "-", "-", "baseline")
                if r.baseline
                else (str(r.only_baseline), str(r.only_this), f"{r.p_value:.3g}", r.verdict)
            ),
            *((f"{r.other_labels['accuracy']:.2%}", f"{r.other_labels['p_value']:.3g}") if held else ()),
            *(f"{r.tests[k]:.2%}" for k in tests),
        )
    out.print(table)


def _print_table4(metrics: dict, title: str) -> None:
    table = Table("class", "precision", "recall", "F1", "support", title=title)
    for label, row in metrics["per_class"].items():
        table.add_row(
            label, f"{row['precision']:.3f}", f"{row['recall']:.3f}", f"{row['f1']:.3f}", str(row["support"])
        )
    table.add_section()
    table.add_row(
        "macro",
        f"{metrics['macro_precision']:.3f}",
        f"{metrics['macro_recall']:.3f}",
        f"{metrics['macro_f1']:.3f}",
        str(metrics["images"]),
    )
    table.add_row("[bold]accuracy[/bold]", "", "", f"[bold]{metrics['accuracy']:.2%}[/bold]", "")
    out.print(table)


@main.command()
@MODEL_OPTION
@click.option("--data-root", type=click.Path(path_type=Path), help=DATA_ROOT_HELP)
@click.option(
    "--tta/--no-tta",
    default=DEFAULT_TTA,
    show_default=True,
    help="Score validation as `run` classifies (with the mirrored face, by default).",
)
@click.option(
    "--qat-steps",
    type=click.IntRange(0),
    default=QAT_STEPS,
    show_default=True,
    help="Quantisation-aware fine-tuning steps (batches of 128 training images): the int8 copy "
    "learns float32's own outputs. 0: a static calibration (ranges observed, weights untouched).",
)
@click.option("--threads", type=click.IntRange(1))
def quantize(model_path, data_root, tta, qat_steps, threads) -> None:
    """Quantise a model to int8 for the CPU, and keep int8 only where it is as accurate.

    \b
    On the model's own training images (rebuilt from the data root as its card records): by
    default a few hundred steps of quantisation-aware fine-tuning (minutes on 2 cores), or with
    --qat-steps 0 activation ranges observed on 1,024 images. The result is stored beside the
    weights (model.int8.safetensors); float32 and int8 are scored on the model's validation
    split and both recorded in its card. `run` and `evaluate` then use int8 on the CPU
    (--precision auto) if it is within 0.1 point of float32.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn, TimeRemainingColumn

    from fer_mine.amacnn.quantize import calibrate_model

    _threads(threads)
    columns = (BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("qat", total=None)
        entry = calibrate_model(
            model_path,
            _data_root(data_root),
            tta,
            qat_steps,
            log=console.print,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    scores = entry["validation"]
    table = Table("precision", "validation accuracy", title=f"{scores['images']} validation images"
                  + (", flip TTA" if tta else ""))  # fmt: skip
    for precision in ("float32", "int8"):
        table.add_row(precision, f"{scores[precision]:.2%}")
    out.print(table)
    verdict = (
        "kept: run and evaluate use int8 on the CPU"
        if entry["kept"]
        else "not kept: it loses more than 0.1 point"
    )
    console.print(f"int8 ({entry['method']}) written beside the weights; {verdict}")


@main.command("model-info")
@MODEL_OPTION
def model_info(model_path) -> None:
    """The network presets (parameters, MACs per image) and the model fer-mine runs."""
    from fer_mine.amacnn.catalog import DEFAULT_MODEL_NAME, shipped_models
    from fer_mine.amacnn.model import build_model, count_macs, count_parameters
    from fer_mine.amacnn.weights import read_card

    table = Table("preset", "input", "params", "MMAC/image", "notes", title="AMACNN presets")
    for preset in PRESETS.values():
        model = build_model(preset.name)
        c = preset.config
        table.add_row(
            preset.name,
            f"{c.input_size}x{c.input_size}x{c.in_channels}",
            f"{count_parameters(model) / 1e6:.2f}M",
            f"{count_macs(model) / 1e6:,.0f}",
            preset.summary,
        )
    out.print(table)
    names = [model_path] if model_path else shipped_models()
    for name in names:
        card, weights = read_card(name)
        default = " [green](default)[/green]" if card.name == DEFAULT_MODEL_NAME and not model_path else ""
        trained = card.training
        out.print(
            f"\nmodel [bold]{card.name}[/bold]{default}: preset {card.preset}, sha256 {card.sha256[:12]}, "
            f"labels {', '.join(card.labels)}\n  trained on {', '.join(trained.get('datasets', []))} "
            f"({_training_summary(trained)}); {weights}"
        )
        parts = ", ".join(f"{m['name']} ({m['sha256'][:8]})" for m in trained.get("ensemble_of", []))
        if card.members > 1:
            out.print(f"  an ensemble of {card.members} networks, probabilities averaged: {parts}")
        elif parts:
            out.print(f"  one network, the weights of these averaged (a soup): {parts}")
        if card.int8:
            scores = card.int8["validation"]
            use = (
                "used on the CPU (--precision auto)"
                if card.int8["kept"]
                else "not kept (--precision int8 to use it)"
            )
            out.print(
                f"  int8 ({card.int8_method}): {use}; validation {scores['int8']:.2%} "
                f"against {scores['float32']:.2%} "
                f"for float32{' (flip TTA)' if scores['tta'] else ''}"
            )
        _print_card_metrics(card.metrics)
    if not model_path:
        from fer_mine.pipeline.detect import shipped_yunet

        path, detector = shipped_yunet()
        out.print(
            f"\ndetector [bold]{detector['name']}[/bold] (default of `run`): sha256 {detector['sha256'][:12]}, "
            f"{detector['parameters']:,} parameters, {detector['license']}; from {detector['source']}; {path}"
        )


def _training_summary(training: dict) -> str:
    """Epochs and hardware of a card's training, the runs it started from (--init) and its
    members included: what it took to make the model, not only its last step. Members that
    started from the same run count that run once."""
    seen: set[str] = set()

    def walk(t: dict) -> tuple[int, set[str]]:
        parts = [m["training"] for m in t.get("ensemble_of", [])] or [t]
        epochs, hardware = 0, set()
        for part in parts:
            epochs += part.get("epochs_run", 0)
            hardware.update(h for h in part.get("hardware", "").split("; ") if h)
            start = part.get("init_from")
            if start and start.get("sha256") not in seen:
                seen.add(start.get("sha256"))
                more, kinds = walk(start.get("training", {}))
                epochs, hardware = epochs + more, hardware | kinds
        return epochs, hardware

    epochs, hardware = walk(training)
    return f"{epochs} epochs in all, on {', '.join(sorted(hardware)) or '?'}"


def _sizes(value: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(v) for v in value.split(","))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a comma list of pixel sizes") from None
    if not sizes or any(not 64 <= s <= 8192 for s in sizes):
        raise click.BadParameter("each size must be between 64 and 8192")
    return sizes


@main.command(context_settings={"ignore_unknown_options": True})
@click.option(
    "--input",
    "inputs",
    multiple=True,
    required=True,
    help="Photo and video folder (repeatable); gs:// etc. where Beam's filesystem extras are installed.",
)
@click.option(
    "--output",
    required=True,
    help="Folder for the faces/, images/, errors/, videos/ Parquet tables; a bucket (s3://, gs://) "
    "with fer-mine[s3] or [gcp].",
)
@MODEL_OPTION
@click.option(
    "--batch-size",
    type=click.IntRange(1, 4096),
    default=64,
    show_default=True,
    help="Faces per inference batch.",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 256),
    default=1,
    show_default=True,
    help="Local workers (DirectRunner), each with its share of the cores.",
)
@click.option(
    "--worker-mode",
    type=click.Choice(WORKER_MODES),
    default=DEFAULT_WORKER_MODE,
    show_default=True,
    help="With --workers: processes (no shared interpreter: for many cores) or threads in this process "
    "(no start-up per worker: as fast as in-process on 2 cores, measured).",
)
@click.option(
    "--detector",
    type=click.Choice(DETECTORS),
    default=DEFAULT_DETECTOR,
    show_default=True,
    help="Face detector: YuNet-n (shipped, OpenCV 4 and 5); OpenCV's res10 SSD or Haar cascade (OpenCV 4 only).",
)
@click.option(
    "--detector-model",
    type=click.Path(exists=True, dir_okay=False),
    help="Another YuNet .onnx file for --detector yunet (default: the shipped YuNet-n).",
)
@click.option(
    "--detect-size",
    callback=lambda ctx, param, value: _sizes(value) if value else None,
    help="Longer image side(s) the detector sees, comma-separated: one pass each, merged "
    f"(default: {describe(DEFAULT_SIZES)}; see benchmarks/detection_quality.py).",
)
@click.option(
    "--min-face",
    type=click.IntRange(1),
    default=10,
    show_default=True,
    help="Smallest face side kept, in original pixels.",
)
@click.option(
    "--threshold",
    type=click.FloatRange(0, 1),
    help=f"Detector score needed (default: {describe(DEFAULT_THRESHOLDS)}).",
)
@MARGIN_OPTION
@ALIGN_OPTION
@ALIGNED_OPTION
@click.option(
    "--max-pixels",
    type=click.IntRange(1),
    default=120_000_000,
    show_default=True,
    help="Larger images are refused (decompression bombs).",
)
@click.option(
    "--video-fps",
    type=click.FloatRange(0, 240),
    default=DEFAULT_VIDEO_FPS,
    show_default=True,
    help=f"Frames sampled per second of video ({', '.join(e[1:] for e in VIDEO_EXTENSIONS)}); 0 leaves "
    "videos aside.",
)
@click.option(
    "--overwrite", is_flag=True, help="Redo every image, not only those not yet recorded for this model."
)
@click.option(
    "--tta/--no-tta",
    default=DEFAULT_TTA,
    show_default=True,
    help="Average each face's probabilities with its mirror image (+0.4 to +0.9 points on FER-2013 validation).",
)
@click.option("--strict", is_flag=True, help="Exit 1 when any file could not be processed.")
@click.option("--quiet", is_flag=True, help="No progress display or summary.")
@click.option(
    "--runner",
    default="DirectRunner",
    show_default=True,
    help="Beam runner (DataflowRunner, FlinkRunner, PortableRunner, ...).",
)
@click.option("--device", help="torch device for inference (default: cuda when available, else cpu).")
@PRECISION_OPTION
@click.argument("beam_args", nargs=-1, type=click.UNPROCESSED)
def run(
    inputs,
    output,
    model_path,
    batch_size,
    workers,
    worker_mode,
    detector,
    detector_model,
    detect_size,
    min_face,
    threshold,
    margin,
    align,
    aligned,
    max_pixels,
    video_fps,
    overwrite,
    tta,
    strict,
    quiet,
    runner,
    device,
    precision,
    beam_args,
) -> None:
    """Find every face in photo archives, classify its emotion, write Parquet.

    Runs an Apache Beam pipeline (in this process by default). Arguments after `--`
    go to Beam unchanged, e.g. `-- --project=P --region=R --temp_location=gs://...`.
    Running again over the same output processes only new images.
    """
    import threading

    from fer_mine.pipeline.detect import DetectorSettings
    from fer_mine.pipeline.run import RunSettings, plan_run
    from fer_mine.pipeline.run import run as run_pipeline

    settings = RunSettings(
        inputs=list(inputs),
        output=str(output),
        model_path=model_path,
        batch_size=batch_size,
        detector=DetectorSettings(detector, detector_model, detect_size, min_face, threshold),
        aligned=aligned,
        margin=margin,
        align=align,
        max_pixels=max_pixels,
        video_fps=video_fps,
        overwrite=overwrite,
        tta=tta,
        workers=workers,
        worker_mode=worker_mode,
        runner=runner,
        beam_args=list(beam_args),
        device=device,
        precision=precision,
    )
    plan = plan_run(settings)
    if not quiet:
        console.print(
            f"model {plan.card.name} ({plan.card.sha256[:12]}, {plan.precision}), detector "
            f"{'none (aligned)' if aligned else detector}, runner {runner}"
            f"{f' x{workers} workers' if workers > 1 else ''}"
        )
        others = (
            f" ({len(plan.other_files)} other files are not photos or videos and stay aside)"
            if plan.other_files
            else ""
        )
        console.print(
            f"found {len(plan.found)} files, {len(plan.found) - len(plan.todo)} already recorded, "
            f"{len(plan.todo)} to process ({plan.videos} of them videos){others}"
        )
    done = threading.Event()
    result: dict = {}

    def work() -> None:
        try:
            result.update(run_pipeline(settings, plan))
        except BaseException as exc:  # handed to the main thread
            result["exception"] = exc
        finally:
            done.set()

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    if quiet or not console.is_terminal:
        done.wait()
    else:
        _show_progress(plan, done)
    if "exception" in result:
        raise result["exception"]
    if not quiet:
        columns = {"found": "found", "skipped": "already recorded", "images": "images", "videos": "videos",
                   "faces": "faces", "errors": "errors"}  # fmt: skip
        summary = Table(*columns.values(), title=f"fer-mine run {result.get('run_id', '')}")
        summary.add_row(*(str(result.get(k, 0)) for k in columns))
        out.print(summary)
        folder = output.rstrip("/")  # a folder or a bucket URI, as given
        if result.get("errors"):
            console.print(
                f"[yellow]warning:[/yellow] {result['errors']} files could not be processed; see {folder}/errors/"
            )
        console.print(
            f"tables written to {folder}/ (faces, images, errors, videos); try `fer-mine report {folder}`"
        )
    if strict and result.get("errors"):
        sys.exit(1)


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option(
    "--output",
    type=click.Path(path_type=Path, file_okay=False),
    required=True,
    help="Folder for the PNG figures, one per face.",
)
@MODEL_OPTION
@ALIGNED_OPTION
@MARGIN_OPTION
@ALIGN_OPTION
@click.option(
    "--tta/--no-tta", default=DEFAULT_TTA, show_default=True, help="Probabilities with flip TTA, as in run."
)
def explain(paths, output, model_path, aligned, margin, align, tta) -> None:
    """Why each face got its label: one PNG per face with AMACNN's attention map over the crop.

    PATHS are photos or folders of photos. Each face is found and cut as `fer-mine run` does;
    the figure shows the crop, the model's spatial attention over it (an ensemble's members'
    maps averaged) and the class probabilities.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from fer_mine.amacnn.explain import Explainer
    from fer_mine.pipeline.detect import DetectorSettings, Face, FaceDetector, crop_face
    from fer_mine.pipeline.images import FoundFile, ImageError, decode, find_images, read_bytes

    files: list[FoundFile] = []
    others: list[str] = []
    for path in paths:
        if path.is_dir():
            files += find_images(str(path), others)
        else:
            files.append(FoundFile(str(path.resolve()), str(path.resolve().parent), path.name))
    if not files:
        raise FerMineError(f"no photos in {', '.join(map(str, paths))}")
    explainer = Explainer(model_path, tta=tta)
    detector = None if aligned else FaceDetector(DetectorSettings())
    output.mkdir(parents=True, exist_ok=True)
    written, skipped, faceless = 0, [], 0
    with Progress(
        TextColumn("explaining"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        console=console, transient=True, disable=not console.is_terminal,
    ) as bar:  # fmt: skip
        for file in bar.track(files):
            try:
                pixels = decode(file, read_bytes(file)).pixels
            except ImageError as exc:
                skipped.append(f"{file.path}: {exc}")
                continue
            height, width = pixels.shape[:2]
            faces = [Face(0, 0, width, height, None)] if detector is None else detector.detect(pixels)
            faceless += not faces
            stem = file.path.rsplit(".", 1)[0].replace("/", "__")
            for index, face in enumerate(faces):
                crop = pixels if detector is None else crop_face(pixels, face, margin, align)
                png = explainer.figure_png(explainer.explain(crop), f"{file.path}, face {index}")
                (output / f"{stem}-face{index}.png").write_bytes(png)
                written += 1
    for line in skipped:
        console.print(f"[yellow]skipped[/yellow] {line}", highlight=False)
    if others:
        console.print(f"{len(others)} other files (videos, notes, ...) are not photos and stay aside")
    console.print(
        f"{written} figures for {len(files) - len(skipped)} photos written to {output}/"
        + (f" ({faceless} photos had no face)" if faceless else "")
        + f"; {explainer.note}"
    )


def _show_progress(plan, done) -> None:
    """A progress bar over the files to process, with images/s, faces/s and the time left, from
    the counts every step leaves (pipeline/progress.py), in-process, with workers or with a
    portable runner on this machine; until the first arrive (a cluster: never), a spinner."""
    import time

    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from fer_mine.pipeline.progress import read_progress

    columns = (SpinnerColumn(), TextColumn("files"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[rates]}"), TimeElapsedColumn(), TextColumn("left"),
               TimeRemainingColumn())  # fmt: skip
    with Progress(*columns, console=console) as bar:
        task = bar.add_task("run", total=len(plan.todo), rates="starting the pipeline")
        first = None
        while not done.wait(0.5):
            counts = read_progress(plan.progress_dir)
            if not counts or bar.finished:  # after the last file: writing and committing the tables
                continue
            first = first or time.monotonic() - 0.5
            seconds = time.monotonic() - first
            frames = f" ({counts['frames']} video frames)" if plan.videos else ""
            rates = (f"{counts['images'] / seconds:.1f} images/s{frames}, {counts['faces'] / seconds:.1f} faces/s, "
                     f"{counts['errors']} errors")  # fmt: skip
            bar.update(task, completed=counts["files"], rates=rates)
            if bar.finished:
                bar.update(task, rates=rates + "; writing the tables")
        bar.update(task, completed=len(plan.todo))


def _report_params(min_confidence, since, until, model_sha) -> ReportParams:
    return ReportParams(min_confidence=min_confidence, since=since, until=until, model_sha256=model_sha)


def _print_results(results, fmt: str) -> None:
    from fer_mine import report_render as render

    if fmt == "json":
        click.echo(render.to_json(results))
        return
    for number, result in enumerate(results):
        if fmt == "table":
            out.print(render.to_rich(result))
        elif fmt == "csv":  # reports one after another, a blank line between
            click.echo(("\n" if number else "") + render.to_csv(result), nl=False)
        else:
            click.echo(render.to_markdown(result))


def _filter_options(command):
    from fer_mine.report_render import FORMATS

    for option in reversed(
        [
            click.option(
                "--min-confidence",
                type=click.FloatRange(0, 1),
                default=ReportParams.min_confidence,
                show_default=True,
                help="Leave out faces whose top label is less probable than this.",
            ),
            click.option(
                "--since", type=click.DateTime(), help="Only photos taken at or after this EXIF time."
            ),
            click.option("--until", type=click.DateTime(), help="Only photos taken before this EXIF time."),
            click.option(
                "--model-sha", help="Rows of this model only (default: the model of the latest run)."
            ),
            click.option(
                "--format",
                "fmt",
                type=click.Choice(FORMATS),
                default="table",
                show_default=True,
            ),
        ]
    ):
        command = option(command)
    return command


@main.command()
@click.argument("output", required=False)
@click.option("--name", "names", multiple=True, help="Report to print (repeatable; default: all).")
@click.option("--list", "list_only", is_flag=True, help="Name each report with the question it answers.")
@click.option(
    "--html",
    "html_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write one self-contained HTML page: every report as a table and chart, face thumbnails.",
)
@click.option(
    "--bucket-s",
    type=click.FloatRange(0, min_open=True),
    default=ReportParams.bucket_s,
    show_default=True,
    help="video_timeline: seconds of video per row.",
)
@click.option(
    "--attention",
    is_flag=True,
    help="--html: show each gallery face with the model's attention map over it (fer-mine explain).",
)
@MODEL_OPTION
@_filter_options
def report(
    output,
    names,
    list_only,
    html_path,
    bucket_s,
    attention,
    model_path,
    min_confidence,
    since,
    until,
    model_sha,
    fmt,
) -> None:
    """Emotion-pattern reports over the tables `fer-mine run` wrote (DuckDB SQL in sql/)."""
    from fer_mine.reports import REPORTS, Archive, describe

    if list_only:
        for name in REPORTS:
            out.print(f"[bold]{name:<14}[/bold] {describe(name)}", highlight=False)
        return
    if output is None:
        raise FerMineError("give the output folder of a `fer-mine run` (or --list)")
    chosen = list(names) or list(REPORTS)
    unknown = [n for n in chosen if n not in REPORTS]
    if unknown:
        raise FerMineError(f"unknown report {', '.join(unknown)}; choose from {', '.join(REPORTS)}")
    if attention and not html_path:
        raise FerMineError("--attention draws on the HTML page: give --html too")
    params = _report_params(min_confidence, since, until, model_sha)
    params.bucket_s = bucket_s
    archive = Archive(output, params)
    results = [archive.report(name) for name in chosen]
    if html_path:
        from fer_mine.report_render import to_html

        explainer = None
        if attention:
            from fer_mine.amacnn.explain import Explainer

            explainer = Explainer(model_path)
            if explainer.card.sha256 != archive.model_sha256:
                raise FerMineError(
                    f"the report's faces were classified by model {archive.model_sha256[:12]}, not "
                    f"{explainer.card.name} ({explainer.card.sha256[:12]}): pass that model as --model"
                )
        with console.status("rendering charts and thumbnails"):
            html_path.write_text(to_html(results, output, archive.model_sha256, explainer=explainer))
        console.print(f"report written to {html_path}")
        return
    _print_results(results, fmt)


@main.command()
@click.argument("output")
@click.argument("sql")
@_filter_options
def query(output, sql, min_confidence, since, until, model_sha, fmt) -> None:
    """Run SQL over the views faces, images, errors and videos of a `fer-mine run` output.

    In faces and images, the column `image` names one photo or one sampled video frame.

    \b
    Example: fer-mine query mined/ "SELECT emotion, count(*) FROM faces GROUP BY 1"
    """
    from fer_mine.reports import Archive

    archive = Archive(output, _report_params(min_confidence, since, until, model_sha))
    _print_results([archive.query(sql, "query", sql)], fmt)


if __name__ == "__main__":
    sys.exit(main())
