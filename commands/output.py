"""Everything the commands print: two consoles (messages on stderr, results on stdout), the
tables of metrics, progress displays and report output."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from fer_mine.defaults import DEFAULT_TTA

console = Console(stderr=True)  # messages and progress
out = Console()  # results: tables, JSON, CSV


def bar(*columns, transient: bool = True) -> Progress:
    """A progress bar on stderr, shown only on a terminal."""
    return Progress(*columns, console=console, transient=transient, disable=not console.is_terminal)


def count_bar(label: str) -> Progress:
    return bar(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())


def print_card_metrics(metrics: dict) -> None:
    """A model card's metrics: one row per split (and per subset, e.g. PrivateTest)."""
    if not metrics:
        return
    table = Table("split", "images", "accuracy", "macro P", "macro R", "macro F1")
    for key, m in metrics.items():
        rows = [(key, m)] + [
            (f"{key} [{k}]", v) for k, v in m.items() if isinstance(v, dict) and "accuracy" in v
        ]
        for name, r in rows:
            table.add_row(name, str(r["images"]), f"{r['accuracy']:.2%}", f"{r['macro_precision']:.3f}",
                          f"{r['macro_recall']:.3f}", f"{r['macro_f1']:.3f}")  # fmt: skip
    out.print(table)


def print_per_class(metrics: dict, title: str) -> None:
    """Per-class precision, recall and F1 with the macro means (the paper's Table 4)."""
    table = Table("class", "precision", "recall", "F1", "support", title=title)
    for label, row in metrics["per_class"].items():
        table.add_row(
            label, f"{row['precision']:.3f}", f"{row['recall']:.3f}", f"{row['f1']:.3f}", str(row["support"])
        )
    table.add_section()
    table.add_row("macro", f"{metrics['macro_precision']:.3f}", f"{metrics['macro_recall']:.3f}",
                  f"{metrics['macro_f1']:.3f}", str(metrics["images"]))  # fmt: skip
    table.add_row("[bold]accuracy[/bold]", "", "", f"[bold]{metrics['accuracy']:.2%}[/bold]", "")
    out.print(table)


def print_calibration(metrics: dict) -> None:
    """Expected calibration error (15 bins) before and after the model card's temperature."""
    rows = [("all", metrics["calibration"])]
    rows += [(name, sub["calibration"]) for name, sub in metrics.get("subsets", {}).items()]
    c = metrics["calibration"]
    table = Table("images", "ECE uncalibrated", "ECE calibrated", "NLL uncalibrated", "NLL calibrated",
                  title=f"calibration (temperature {c['temperature']:.3g}; 1 = the card has none)")  # fmt: skip
    for name, c in rows:
        table.add_row(name, f"{c['ece_uncalibrated']:.4f}", f"{c['ece']:.4f}",
                      f"{c['nll_uncalibrated']:.4f}", f"{c['nll']:.4f}")  # fmt: skip
    out.print(table)


def print_calibration_fit(card) -> None:
    """What `fer-mine calibrate` fitted, per TTA setting."""
    table = Table("flip", "T", "ECE", "NLL", "uncertain under", "faces kept", "kept right",
                  title=f"{card.name}: {card.calibration['fitted_on']}")  # fmt: skip
    for key, label in (("plain", "no"), ("tta", "yes")):
        c = card.calibration[key]
        table.add_row(label, f"{c['temperature']:.3f}", f"{c['ece'][0]:.3f}->{c['ece'][1]:.3f}",
                      f"{c['nll'][0]:.3f}->{c['nll'][1]:.3f}", f"{c['uncertain_below']:.3f}",
                      f"{c['kept_share']:.1%}", "-" if c["kept_accuracy"] is None else f"{c['kept_accuracy']:.1%}")  # fmt: skip
    out.print(table)


def model_written(output: Path, card) -> None:
    console.print(
        f"model written to {output} (sha256 {card.sha256[:12]}); for int8 on the CPU (4x the faces/s "
        f"where as accurate): fer-mine quantize --model {output}"
    )


def print_results(results: list, fmt: str) -> None:
    """Report results in the chosen format; tables fit the terminal's width."""
    from fer_mine.reports import text

    if fmt == "json":
        click.echo(text.to_json(results))
        return
    for number, result in enumerate(results):
        if fmt == "table":
            out.print(text.to_rich(result, out.width))
        elif fmt == "csv":  # reports one after another, a blank line between
            click.echo(("\n" if number else "") + text.to_csv(result), nl=False)
        else:
            click.echo(text.to_markdown(result))


@contextmanager
def training_progress() -> Iterator:
    """A bar over one epoch's steps with loss and accuracy; yields the callback `train` calls."""
    columns = (TextColumn("epoch {task.fields[epoch]}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("loss {task.fields[loss]:.4f} acc {task.fields[acc]:.3f}"), TimeRemainingColumn())  # fmt: skip
    with bar(*columns) as progress:
        task = progress.add_task("train", total=1, epoch=0, loss=0.0, acc=0.0)

        def on_step(epoch: int, step: int, steps: int, loss: float, acc: float) -> None:
            progress.update(task, completed=step, total=steps, epoch=epoch + 1, loss=loss, acc=acc)

        yield on_step, progress.console.print


def run_progress(plan, done: threading.Event) -> None:
    """A progress bar over the files to process, with images/s, faces/s and the time left, from
    the counts every step leaves (pipeline/progress.py), in-process, with workers or with a
    portable runner on this machine; until the first arrive (a cluster: never), a spinner."""
    from fer_mine.pipeline.progress import read_progress

    columns = (SpinnerColumn(), TextColumn("files"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[rates]}"), TimeElapsedColumn(), TextColumn("left"),
               TimeRemainingColumn())  # fmt: skip
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("run", total=len(plan.todo), rates="starting the pipeline")
        first = None
        while not done.wait(0.5):
            counts = read_progress(plan.progress_dir)
            if not counts or progress.finished:  # after the last file: writing and committing the tables
                continue
            first = first or time.monotonic() - 0.5
            seconds = time.monotonic() - first
            frames = f" ({counts['frames']} video frames)" if plan.videos else ""
            rates = (f"{counts['images'] / seconds:.1f} images/s{frames}, {counts['faces'] / seconds:.1f} faces/s, "
                     f"{counts['errors']} errors")  # fmt: skip
            progress.update(task, completed=counts["files"], rates=rates)
            if progress.finished:
                progress.update(task, rates=rates + "; writing the tables")
        progress.update(task, completed=len(plan.todo))


def print_member_scores(scores: dict[str, dict], tests: list[str]) -> None:
    """`ensemble`: each member's and the combined model's accuracy per split (and subset)."""
    any_scores = next(iter(scores.values()))
    columns = [(key, None) for key in any_scores] + [
        (key, sub) for key in tests for sub in any_scores[key].get("subsets", {})
    ]
    table = Table("model", *(f"{k} [{s}]" if s else k for k, s in columns), title="accuracy (choose by val)")
    for model_name, per_split in scores.items():
        cells = [per_split[k]["subsets"][s] if s else per_split[k] for k, s in columns]
        table.add_row(model_name, *(f"{c['accuracy']:.2%}" for c in cells))
    out.print(table)


def print_comparison(rows: list, val_images: int, other_labels: str | None) -> None:
    """`compare`: one row per model and flip, against the baseline (the first with flip)."""
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
    out.print(table)


def print_int8_choice(entry: dict, tta: bool) -> None:
    """`quantize`: float32 and int8 on validation, and whether int8 is kept."""
    scores = entry["validation"]
    table = Table("precision", "validation accuracy", title=f"{scores['images']} validation images"
                  + (", flip TTA" if tta else ""))  # fmt: skip
    for precision in ("float32", "int8"):
        table.add_row(precision, f"{scores[precision]:.2%}")
    out.print(table)
    if "refine_margin" in entry:
        verdict = (f"kept with its close calls in float32: faces whose top two labels are nearer than "
                   f"{entry['refine_margin']:g} ({entry['refined_share']:.1%} of validation) are classified "
                   "again in float32, which gives every validation face float32's label")  # fmt: skip
    elif entry["kept"]:
        verdict = "kept: run and evaluate use int8 on the CPU"
    else:
        verdict = (
            "not kept: it loses more than 0.1 point, and its close calls are too many to redo in float32"
        )
    console.print(f"int8 ({entry['method']}) beside the weights: {verdict}")


def print_presets(costs: list) -> None:
    """`model-info`: each preset's input, parameters and MACs per image."""
    table = Table("preset", "input", "params", "MMAC/image", "notes", title="AMACNN presets")
    for preset, parameters, macs in costs:
        c = preset.config
        table.add_row(preset.name, f"{c.input_size}x{c.input_size}x{c.in_channels}", f"{parameters / 1e6:.2f}M",
                      f"{macs / 1e6:,.0f}", preset.summary)  # fmt: skip
    out.print(table)


def print_model_card(card, weights: Path, default: bool) -> None:
    """`model-info`: what a model is, how it was made, its int8 and its measured figures."""
    from fer_mine.amacnn.catalog import training_summary

    trained = card.training
    out.print(
        f"\nmodel [bold]{card.name}[/bold]{' [green](default)[/green]' if default else ''}: preset {card.preset}, "
        f"sha256 {card.sha256[:12]}, labels {', '.join(card.labels)}\n  trained on "
        f"{', '.join(trained.get('datasets', []))} ({training_summary(trained)}); {weights}"
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
            f"  int8 ({card.int8_method}): {use}; validation {scores['int8']:.2%} against {scores['float32']:.2%} "
            f"for float32{' (flip TTA)' if scores['tta'] else ''}"
        )
    print_card_metrics(card.metrics)


def print_detector(path: Path, detector: dict) -> None:
    out.print(
        f"\ndetector [bold]{detector['name']}[/bold] (default of `run`): sha256 {detector['sha256'][:12]}, "
        f"{detector['parameters']:,} parameters, {detector['license']}; from {detector['source']}; {path}"
    )


def print_plan(settings, plan) -> None:
    """`run`: the model, detector and runner, and what was found to do."""
    console.print(
        f"model {plan.card.name} ({plan.card.sha256[:12]}, {plan.precision}), detector "
        f"{'none (aligned)' if settings.aligned else settings.detector.name}, runner {settings.runner}"
        f"{f' x{plan.workers} workers ({plan.worker_mode})' if plan.workers > 1 else ''}"
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
    if plan.backfill:
        faces = sum(len(wanted) for _, _, wanted in plan.backfill)
        console.print(f"--people: {faces} faces recorded without it, in {len(plan.backfill)} files, to embed")


def print_run_summary(result: dict, output: str) -> None:
    """`run`: the counts of the run, and where its tables are."""
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
    if "people" in result:
        people = result["people"]
        console.print(
            f"people: {result.get('embeddings', 0)} new face embeddings in {folder}/embeddings/; "
            f"{people['faces']} faces of {people['people']} people in all (one person within "
            f"{people['distance']:.2f}, this archive's own cut); `fer-mine people list {folder}`"
        )


def print_people(rows: list[dict], output: str) -> None:
    """`people list`: one row per person."""
    if not rows:
        console.print(f"no people in {output}: run `fer-mine run --people` over it first")
        return
    videos = any(r["videos"] for r in rows)
    columns = ["person", "name", "faces", "photos", *(["video frames", "videos", "in videos"] if videos else []),
               "first seen", "last seen", "dominant emotion"]  # fmt: skip
    table = Table(*columns, title=f"people in {output}")
    for r in rows:
        seen = f"{r['first_in_video_s']:.0f} s to {r['last_in_video_s']:.0f} s" if r["frames"] else ""
        in_videos = [str(r["frames"]), str(r["videos"]), seen] if videos else []
        table.add_row(r["person_id"], r["name"] or "", str(r["faces"]), str(r["photos"]), *in_videos,
                      str(r["first_seen"] or ""), str(r["last_seen"] or ""), r["dominant_emotion"] or "")  # fmt: skip
    out.print(table)
