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


def print_table4(metrics: dict, title: str) -> None:
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
