"""Commands on models: `ensemble`, `compare`, `quantize`, `calibrate` and `model-info`."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn, TimeRemainingColumn

from fer_mine.amacnn.recipe import QAT_STEPS
from fer_mine.commands import options
from fer_mine.commands.output import (
    console,
    model_written,
    print_calibration_fit,
    print_comparison,
    print_detector,
    print_int8_choice,
    print_member_scores,
    print_model_card,
    print_presets,
)
from fer_mine.defaults import DEFAULT_TTA


@click.command()
@click.argument("models", nargs=-1, required=True)
@click.option("--name", required=True, help="Name of the combined model (ensemble or soup) in its card.")
@click.option(
    "--output",
    type=click.Path(path_type=Path, file_okay=False),
    required=True,
    help="Folder for the combined model's weights, card and confusion PNGs.",
)
@options.data_root
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
@options.threads()
def ensemble(models, name, output, data_root, half, soup, threads) -> None:
    """Combine trained MODELS (folders or shipped names) into one model that averages their
    probabilities (or, with --soup, their weights), and compare it with each member on the shared
    validation split and the tests.

    Members must have been trained with the same --split-seed and datasets, so the validation
    figures, the only ones to choose by, stay clean.
    """
    from fer_mine.amacnn.ensemble import combine, record_scores, score_on, validation_data
    from fer_mine.amacnn.weights import load_model as load

    options.use_threads(threads)
    root = options.resolve_data_root(data_root)
    loaded = [load(path, inference=False) for path in models]  # combine copies their layers
    combined, card = combine(loaded, name, output, log=console.print, half=half, soup=soup)
    with console.status("decoding the validation and test splits"):
        data = validation_data(card, root, log=console.print)
    members = {c.name + f" ({c.sha256[:8]})": m for m, c in loaded}
    ours_name = f"{name} ({'soup' if soup else 'ensemble'})"
    with console.status(f"evaluating {len(members)} members and the combined model"):
        scores = score_on({**members, ours_name: combined}, data, card)
    print_member_scores(scores, list(data.tests))
    record_scores(card, data, {"plain": scores[ours_name], "flip": scores[ours_name + " +flip"]}, output)
    model_written(output, card)


@click.command()
@click.argument("models", nargs=-1, required=True)
@options.data_root
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
@options.threads()
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

    options.use_threads(threads)
    root = options.resolve_data_root(data_root)
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
    print_comparison(rows, len(data.val.labels), other_labels)


@click.command()
@options.model
@options.data_root
@options.tta(DEFAULT_TTA, "Score validation as `run` classifies (with the mirrored face, by default).")
@click.option(
    "--qat-steps",
    type=click.IntRange(0),
    default=QAT_STEPS,
    show_default=True,
    help="Quantisation-aware fine-tuning steps (batches of 128 training images): the int8 copy "
    "learns float32's own outputs. 0: a static calibration (ranges observed, weights untouched).",
)
@click.option(
    "--rescore",
    is_flag=True,
    help="Score the int8 network stored beside the weights again, and choose its float32 margin, "
    "without quantising anew.",
)
@options.threads()
def quantize(model_path, data_root, tta, qat_steps, rescore, threads) -> None:
    """Quantise a model to int8 for the CPU, and keep int8 only where it is as accurate.

    \b
    On the model's own training images (rebuilt from the data root as its card records): by
    default a few hundred steps of quantisation-aware fine-tuning (minutes on 2 cores), or with
    --qat-steps 0 activation ranges observed on 1,024 images. The result is stored beside the
    weights (model.int8.safetensors); float32 and int8 are scored on the model's validation
    split and both recorded in its card. `run` and `evaluate` then use int8 on the CPU
    (--precision auto) if it is within 0.1 point of float32, or else if int8 with its close calls
    classified again in float32 gives every validation face float32's label while classifying
    at most a quarter of them twice (the margin that takes is stored in the card).
    """
    from fer_mine.amacnn.quantize import quantize_model

    options.use_threads(threads)
    columns = (BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("qat", total=None)
        entry = quantize_model(
            model_path,
            options.resolve_data_root(data_root),
            tta,
            qat_steps,
            log=console.print,
            progress=lambda done, total: progress.update(task, completed=done, total=total),
            rescore=rescore,
        )
    print_int8_choice(entry, tta)


@click.command()
@options.model
@options.data_root
@options.threads()
def calibrate(model_path, data_root, threads) -> None:
    """Calibrate a model's confidence, and choose when a face is uncertain.

    \b
    On the model's own validation split (rebuilt from the data root as its card records), with
    and without flip TTA: one temperature T each, fitted by negative log-likelihood (temperature
    scaling), so that a confidence of 0.7 is right about 70% of the time; and the confidence
    under which a face is `uncertain`: the lowest at which the faces kept are right 80% of the
    time. Both go into the model card; `run`, `evaluate` and `explain` use them. Labels never
    change, only how sure the model says it is. Seconds to a minute on 2 cores.
    """
    from fer_mine.amacnn.evaluation import fit_calibration

    options.use_threads(threads)
    card = fit_calibration(model_path, options.resolve_data_root(data_root), console.status, console.print)
    print_calibration_fit(card)


@click.command("model-info")
@options.model
def model_info(model_path) -> None:
    """The network presets (parameters, MACs per image) and the model fer-mine runs."""
    from fer_mine.amacnn.catalog import DEFAULT_MODEL_NAME, shipped_models
    from fer_mine.amacnn.model import preset_costs
    from fer_mine.amacnn.weights import read_card

    print_presets(preset_costs())
    names = [model_path] if model_path else shipped_models()
    for name in names:
        card, weights = read_card(name)
        print_model_card(card, weights, default=card.name == DEFAULT_MODEL_NAME and not model_path)
    if not model_path:
        from fer_mine.media.detect import shipped_yunet

        print_detector(*shipped_yunet())
