"""`fer-mine people`: who is in an output's faces (after `run --people`), names, and forgetting."""

from __future__ import annotations

import click

from fer_mine.commands.output import console, print_people
from fer_mine.people.cluster import SPLIT_SHARE


@click.group()
def people() -> None:
    """People in a mined output: faces told apart by a face embedding (`run --people`).

    \b
    Embeddings are biometric data: made only with `run --people`, kept in their own table
    (OUTPUT/embeddings/), never in the emotion records, and deleted with `people forget`.
    Every people command first deletes embeddings a stopped or failed run left uncommitted.
    """


def _records(output: str):
    """records.people, once the output's uncommitted embeddings are gone."""
    from fer_mine.records import people as people_records

    people_records.drop_uncommitted(output)
    return people_records


@people.command("cluster")
@click.argument("output")
def cluster_people(output) -> None:
    """Group every embedded face of OUTPUT into persons (older runs included). Faces already
    assigned keep their person; a new face joins the nearest person when close enough, and
    the rest are clustered into new persons. `run --people` does this after each run."""
    counts = _records(output).assign_people(output)
    console.print(
        f"{counts['faces']} faces of {counts['people']} people ({counts['new_faces']} newly assigned; "
        f"this archive's faces are one person within {counts['distance']:.2f})"
    )


@people.command("list")
@click.argument("output")
def list_people(output) -> None:
    """One row per person: name, faces, photos, when first and last seen, dominant emotion."""
    from fer_mine.reports.archive import Archive
    from fer_mine.reports.params import ReportParams

    _records(output)
    result = Archive(output, ReportParams(min_quality=0.0)).report("people")
    print_people([dict(zip(result.columns, row, strict=True)) for row in result.rows], output)


@people.command("name")
@click.argument("output")
@click.argument("person_id")
@click.argument("name")
def name_person(output, person_id, name) -> None:
    """Give person PERSON_ID (P1, P2, ...) a NAME; reports show it. It stays across runs."""
    _records(output).name_person(output, person_id, name)
    console.print(f"{person_id} is now {name!r}")


@people.command("merge")
@click.argument("output")
@click.argument("person_id")
@click.argument("others", nargs=-1, required=True)
def merge(output, person_id, others) -> None:
    """Make OTHERS one person with PERSON_ID, where the grouping split someone in two."""
    moved = _records(output).merge(output, person_id, list(others))
    console.print(f"{moved} faces of {', '.join(others)} are now {person_id}")


@people.command("split")
@click.argument("output")
@click.argument("person_id")
@click.option(
    "--distance",
    type=click.FloatRange(0.05, 2.0),
    help=f"Group PERSON_ID's faces again at this distance [default: {SPLIT_SHARE} x the archive's own cut].",
)
def split(output, person_id, distance) -> None:
    """Split PERSON_ID where the grouping merged two people: their faces are grouped again at a
    smaller distance; the largest group keeps the id and name, the others become new persons."""
    ids, used = _records(output).split(output, person_id, distance)
    console.print(f"{person_id} is now {len(ids)} people at distance {used:.2f}: {', '.join(ids)}")


@people.command("forget")
@click.argument("output")
@click.argument("person_id", required=False)
@click.option("--all", "everyone", is_flag=True, help="Remove every embedding and everything about people.")
def forget(output, person_id, everyone) -> None:
    """Delete PERSON_ID's embeddings, person assignment and name (or, with --all, every
    embedding). The emotion records (faces, images) stay as they are."""
    from fer_mine.errors import FerMineError

    if bool(person_id) == everyone:
        raise FerMineError("give one person id (P17) or --all")
    removed = _records(output).forget(output, None if everyone else person_id)
    what = "every person" if everyone else person_id
    console.print(
        f"forgot {what}: {removed['embeddings']} embeddings deleted; the emotion records are unchanged; "
        "later runs will not embed these faces again (`fer-mine people unforget` undoes that)"
    )
    if removed["pages"]:  # copies no command reaches: the user has to delete or rewrite them
        console.print(
            f"these HTML pages were written with people on them and may still show {what}; delete them, "
            "or write them again with `fer-mine report --html`:"
        )
        for page in removed["pages"]:
            console.print(f"  {page}", highlight=False)


@people.command("unforget")
@click.argument("output")
def unforget(output) -> None:
    """Let later `run --people` embed the faces forgotten so far again. `people forget` keeps
    their keys (the picture's hash, frame and face index: no biometric data) so that no run
    embeds them again; this clears that list."""
    count = _records(output).unforget(output)
    console.print(f"{count} forgotten faces may be embedded again by `run --people`")
