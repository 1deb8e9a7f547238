"""Options that several commands share, declared once. Kept free of heavy imports: `--help`
shows every default without loading torch, OpenCV or DuckDB."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import click

from fer_mine.defaults import DEFAULT_ALIGN, DEFAULT_MARGIN, DEFAULT_PRECISION, PRECISIONS
from fer_mine.errors import FerMineError
from fer_mine.reports.params import ReportParams
from fer_mine.reports.text import FORMATS

model = click.option(
    "--model",
    "model_path",
    help="Model folder or model.json, or a shipped model's name (default: amacnn-fer2013; see model-info).",
)
# The classifier's arithmetic: shared by `run` and `evaluate`, so evaluate measures what run does
precision = click.option(
    "--precision",
    type=click.Choice(PRECISIONS),
    default=DEFAULT_PRECISION,
    show_default=True,
    help="Classifier arithmetic: auto is int8 on the CPU where the model card keeps its int8 network "
    "(`fer-mine quantize`: within 0.1 point of float32 on validation, 4-5x the faces/s), else float32.",
)
# How faces are cut: shared by `run` and `explain`, which must cut them alike
margin = click.option(
    "--margin",
    type=click.FloatRange(-0.2, 1.0),
    default=DEFAULT_MARGIN,
    show_default=True,
    help="Crop margin around each face box, per side, as a share of its size "
    "(chosen with benchmarks/pipeline_accuracy.py).",
)
align = click.option(
    "--align/--no-align",
    default=DEFAULT_ALIGN,
    show_default=True,
    help="Rotate each face crop so that the eyes are level (needs landmarks: yunet).",
)
aligned = click.option(
    "--aligned", is_flag=True, help="Each image is one already-cropped face (FER-2013 style): no detection."
)
data_root = click.option(
    "--data-root",
    type=click.Path(path_type=Path),
    help="Folder holding one folder per dataset (default: $FER_MINE_DATA).",
)
device = click.option("--device", help="torch device (default: cuda when available, else cpu).")


def each(*decorators: Callable) -> Callable:
    """Several options as one decorator, in the order given (as `--help` lists them)."""

    def apply(command: Callable) -> Callable:
        for decorator in reversed(decorators):
            command = decorator(command)
        return command

    return apply


def threads(help: str | None = None) -> Callable:
    return click.option("--threads", type=click.IntRange(1), help=help)


def tta(default: bool, help: str, show_default: bool = True) -> Callable:
    return click.option("--tta/--no-tta", default=default, show_default=show_default, help=help)


def report_filters(min_quality: float = ReportParams.min_quality) -> Callable:
    """The filters and output format `report` and `query` share; `min_quality`: the command's
    default (`query` counts every face unless asked)."""
    return each(
        click.option(
            "--min-confidence",
            type=click.FloatRange(0, 1),
            default=ReportParams.min_confidence,
            show_default=True,
            help="Leave out faces whose top label is less probable than this (calibrated probability).",
        ),
        click.option(
            "--min-quality",
            type=click.FloatRange(0, 1),
            default=min_quality,
            show_default=True,
            help="Leave out faces whose quality score is under this: the weakest of size, sharpness, "
            "head pose and detector score, each 0 to 1 (docs/usage.md). 0 keeps every face.",
        ),
        click.option(
            "--certain-only",
            is_flag=True,
            help="Leave out the faces flagged uncertain (their confidence is under the model's "
            "calibrated cut-off, below which validation faces were right less than 80% of the time).",
        ),
        click.option("--since", type=click.DateTime(), help="Only photos taken at or after this EXIF time."),
        click.option("--until", type=click.DateTime(), help="Only photos taken before this EXIF time."),
        click.option("--model-sha", help="Rows of this model only (default: the model of the latest run)."),
        click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True),
    )


def resolve_data_root(value: Path | None) -> Path:
    from fer_mine.amacnn.datasets import DATA_ROOT_ENV, default_data_root

    root = value or default_data_root()
    if root is None:
        raise FerMineError(f"no data root: pass --data-root DIR or set ${DATA_ROOT_ENV}")
    return root


def use_threads(count: int | None) -> None:
    """torch's CPU threads: all cores unless told."""
    import torch

    torch.set_num_threads(count or os.cpu_count() or 1)
