"""Commands on models: `ensemble`, `compare`, `quantize` and `model-info`."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from fer_mine.amacnn.presets import PRESETS
from fer_mine.amacnn.recipe import QAT_STEPS
from fer_mine.commands import options
from fer_mine.commands.output import console, model_written, out, print_card_metrics
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
    any_scores = next(iter(scores.values()))
    columns = [(key, None) for key in any_scores] + [
        (key, sub) for key in data.tests for sub in any_scores[key].get("subsets", {})
    ]
    table = Table("model", *(f"{k} [{s}]" if s else k for k, s in columns), title="accuracy (choose by val)")
    for model_name, per_split in scores.items():
        cells = [per_split[k]["subsets"][s] if s else per_split[k] for k, s in columns]
        table.add_row(model_name, *(f"{c['accuracy']:.2%}" for c in cells))
    out.print(table)
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
    out.print(_comparison_table(rows, len(data.val.labels), other_labels))


def _comparison_table(rows: list, val_images: int, other_labels: str | None) -> Table:
    tests = list(rows[0].tests)
    held = f"val, {other_labels}'s labels ({rows[0].other_labels['images']:,})" if other_labels else None
    table = Table(
        "model",
        "flip",
        "passes/face",
        f"val ({val_images})",
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
    return table


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
@options.threads()
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
    from fer_mine.amacnn.quantize import calibrate_model

    options.use_threads(threads)
    columns = (BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("qat", total=None)
        entry = calibrate_model(
            model_path,
            options.resolve_data_root(data_root),
            tta,
            qat_steps,
            log=console.print,
            progress=lambda done, total: progress.update(task, completed=done, total=total),
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


@click.command("model-info")
@options.model
def model_info(model_path) -> None:
    """The network presets (parameters, MACs per image) and the model fer-mine runs."""
    from fer_mine.amacnn.catalog import DEFAULT_MODEL_NAME, shipped_models, training_summary
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
            f"({training_summary(trained)}); {weights}"
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
        print_card_metrics(card.metrics)
    if not model_path:
        from fer_mine.media.detect import shipped_yunet

        path, detector = shipped_yunet()
        out.print(
            f"\ndetector [bold]{detector['name']}[/bold] (default of `run`): sha256 {detector['sha256'][:12]}, "
            f"{detector['parameters']:,} parameters, {detector['license']}; from {detector['source']}; {path}"
        )
