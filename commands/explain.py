"""`fer-mine explain`: the attention map of every face (amacnn/explain.py)."""

from __future__ import annotations

from pathlib import Path

import click

from fer_mine.commands import options
from fer_mine.commands.output import console, count_bar
from fer_mine.defaults import DEFAULT_TTA
from fer_mine.errors import FerMineError


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option(
    "--output",
    type=click.Path(path_type=Path, file_okay=False),
    required=True,
    help="Folder for the PNG figures, one per face.",
)
@options.model
@options.aligned
@options.margin
@options.align
@options.tta(DEFAULT_TTA, "Probabilities with flip TTA, as in run.")
def explain(paths, output, model_path, aligned, margin, align, tta) -> None:
    """Why each face got its label: one PNG per face with AMACNN's attention map over the crop.

    PATHS are photos or folders of photos. Each face is found and cut as `fer-mine run` does;
    the figure shows the crop, the model's spatial attention over it (an ensemble's members'
    maps averaged) and the class probabilities.
    """
    from fer_mine.amacnn.explain import Explainer, explain_photos
    from fer_mine.media.images import FoundFile, find_images

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
    with count_bar("explaining") as progress:
        done = explain_photos(files, explainer, output, margin, align, aligned, progress.track)
    for line in done.skipped:
        console.print(f"[yellow]skipped[/yellow] {line}", highlight=False)
    if others:
        console.print(f"{len(others)} other files (videos, notes, ...) are not photos and stay aside")
    console.print(
        f"{done.written} figures for {done.photos} photos written to {output}/"
        + (f" ({done.faceless} photos had no face)" if done.faceless else "")
        + f"; {explainer.note}"
    )
