"""`fer-mine evaluate`: a model scored on a labelled folder (amacnn/evaluation.py)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from fer_mine.commands import options
from fer_mine.commands.output import console, print_calibration, print_per_class
from fer_mine.defaults import DEFAULT_DETECTOR


@click.command()
@options.model
@options.data_root
@click.option("--dataset", required=True, help="Dataset folder name under the data root.")
@click.option(
    "--split",
    default="test",
    show_default=True,
    help="Split to evaluate (train, valid, test), or all: every image of the dataset.",
)
@options.tta(False, "Average with the horizontally flipped image.", show_default=False)
@click.option(
    "--detect",
    is_flag=True,
    help="The images are whole photos: find and cut each face as fer-mine run does, and score "
    "the largest one (photos without a face are counted, not scored).",
)
@click.option(
    "--output",
    type=click.Path(path_type=Path, file_okay=False),
    help="Folder for metrics JSON, confusion and reliability PNGs (default: eval-<dataset>-<split>).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON on stdout.")
@click.option("--record", is_flag=True, help="Also store the figures in the model card.")
@options.threads()
@options.device
@options.precision
def evaluate(model_path, data_root, dataset, split, tta, detect, output, as_json, record, threads, device,
             precision) -> None:  # fmt: skip
    """Accuracy, macro and per-class precision/recall/F1, and a confusion matrix (paper's Table 4).

    \b
    DATASET is a folder under --data-root: FER-2013 or FER+ as published, or your own
    labelled photos as <emotion>/ folders, bare or inside train/, valid/ or test/.
    """
    from fer_mine.amacnn.evaluation import evaluate_dataset, record_in_card, write_evaluation

    options.use_threads(threads)
    root = options.resolve_data_root(data_root)
    result = evaluate_dataset(
        model_path, root, dataset, split, tta, detect, precision, device, console.status
    )
    folder = output or Path(f"eval-{dataset}-{split}")
    write_evaluation(result, folder)
    if record:
        record_in_card(result, model_path)
    metrics, card = result.metrics, result.card
    if as_json:
        click.echo(json.dumps(metrics, indent=2))
        return
    if result.loaded.skipped:
        console.print(f"[yellow]skipped {len(result.loaded.skipped)} unreadable images[/yellow]")
    if detect:
        found = metrics["detection"]
        console.print(
            f"faces found by {DEFAULT_DETECTOR}: {found['scored']} of {found['photos']} photos scored, "
            f"{found['no_face']} with no face (not scored), {found['several_faces']} with several (the "
            f"largest scored); counting faceless photos as wrong: {found['accuracy_all_photos']:.2%}"
        )
    title = f"{card.name} ({card.sha256[:12]}, {result.precision}) on {dataset}/{split}" + (
        " +TTA" if tta else ""
    )
    print_per_class(metrics, title)
    for name, sub in metrics.get("subsets", {}).items():
        print_per_class(sub, f"... {name} only")
    print_calibration(metrics)
    console.print(f"metrics, confusion matrix and reliability diagram written to {folder}/")
