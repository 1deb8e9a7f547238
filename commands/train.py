"""`fer-mine train`: its recipe options are built from `TrainOptions` (amacnn/recipe.py), where
each is declared once with its default and help."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import Field, fields
from pathlib import Path

import click

from fer_mine.amacnn.recipe import TrainOptions
from fer_mine.commands import options
from fer_mine.commands.output import console, model_written, print_card_metrics, training_progress


def _recipe_option(spec: Field) -> Callable:
    """The click option of one recipe field, from its metadata."""
    meta, default = spec.metadata, spec.default
    flag = meta.get("flag", "--" + spec.name.replace("_", "-"))
    kwargs: dict = {"help": meta["help"] or None}
    if isinstance(default, bool):
        declared = [f"{flag}/--no-{flag[2:]}"] if meta.get("negatable") else [flag]
        kwargs |= {"default": default} if meta.get("negatable") else {"is_flag": True}
        return click.option(*declared, spec.name, **kwargs)
    if "choices" in meta:
        kwargs["type"] = click.Choice(meta["choices"])
    elif "min" in meta or "max" in meta:
        bounds = click.IntRange if isinstance(default, int) else click.FloatRange
        kwargs["type"] = bounds(meta.get("min"), meta.get("max"), min_open=meta.get("min_open", False))
    elif isinstance(default, int):
        kwargs["type"] = int
    if "unset" in meta:  # not given: the recipe's value that means "none"
        kwargs["callback"] = lambda ctx, param, value: meta["unset"] if value is None else value
    else:
        kwargs["default"] = default
        kwargs["show_default"] = meta.get("show_default", default != "")
    if "metavar" in meta:
        kwargs["metavar"] = meta["metavar"]
    return click.option(flag, spec.name, **kwargs)


def recipe_options(command: Callable) -> Callable:
    for spec in reversed([f for f in fields(TrainOptions) if "help" in f.metadata]):
        command = _recipe_option(spec)(command)
    return command


@click.command()
@options.data_root
@click.option(
    "--datasets",
    "dataset_names",
    default="all",
    show_default=True,
    help="Comma list of dataset folders, or 'all' (every dataset under the data root).",
)
@recipe_options
@options.threads("CPU threads (default: all cores).")
@options.device
@click.option("--output", type=click.Path(path_type=Path, file_okay=False), default=Path("runs/amacnn"),
              show_default=True)  # fmt: skip
@click.option("--resume", is_flag=True, help="Continue from the checkpoint in --output.")
def train(data_root, dataset_names, threads, device, output, resume, **recipe) -> None:
    """Train AMACNN (the paper's recipe by default) and evaluate it on each test split.

    Writes into --output: model.safetensors + model.json (the model card), history.csv,
    training-curves.png, confusion-<dataset>-test.png and checkpoint.pt (for --resume).
    """
    from fer_mine.amacnn.data import resolve_training_data
    from fer_mine.amacnn.model import pick_device
    from fer_mine.amacnn.train import train as run_training

    options.use_threads(threads)
    settings = TrainOptions(**recipe)
    datasets, votes, notes = resolve_training_data(
        options.resolve_data_root(data_root), dataset_names, settings
    )
    for note in notes:
        console.print(note)
    settings.datasets = [d.name for d in datasets]
    torch_device = pick_device(device)
    console.print(
        f"training preset [bold]{settings.preset}[/bold] on {torch_device} with {', '.join(settings.datasets)}"
    )
    with training_progress() as (on_step, log):
        card = run_training(datasets, output, settings, resume, torch_device, on_step, log, votes)
    print_card_metrics(card.metrics)
    model_written(output, card)
