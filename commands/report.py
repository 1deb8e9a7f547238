"""`fer-mine report` and `fer-mine query`: DuckDB SQL over a run's tables (reports/)."""

from __future__ import annotations

from pathlib import Path

import click

from fer_mine.commands import options
from fer_mine.commands.output import console, out, print_results
from fer_mine.errors import FerMineError
from fer_mine.reports.params import ReportParams


@click.command()
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
    "--people",
    "with_people",
    is_flag=True,
    help="--html: include who is who (the people reports, with their names and faces). Off "
    "unless given or named with --name: `people forget` cannot reach a page once written.",
)
@click.option(
    "--attention",
    is_flag=True,
    help="--html: show each gallery face with the model's attention map over it (fer-mine explain).",
)
@options.model
@options.report_filters()
def report(
    output,
    names,
    list_only,
    html_path,
    bucket_s,
    attention,
    with_people,
    model_path,
    min_confidence,
    min_quality,
    certain_only,
    since,
    until,
    model_sha,
    fmt,
) -> None:
    """Emotion-pattern reports over the tables `fer-mine run` wrote (DuckDB SQL in sql/)."""
    from fer_mine.reports.archive import Archive, describe
    from fer_mine.reports.registry import REPORTS, chosen_reports

    if list_only:
        for name in REPORTS:
            out.print(f"[bold]{name:<14}[/bold] {describe(name)}", highlight=False)
        return
    if output is None:
        raise FerMineError("give the output folder of a `fer-mine run` (or --list)")
    for what, given in (("--people chooses what the HTML page shows", with_people),
                        ("--attention draws on the HTML page", attention)):  # fmt: skip
        if given and not html_path:
            raise FerMineError(f"{what}: give --html too")
    chosen = chosen_reports(names, page=bool(html_path), people=with_people)
    params = ReportParams(min_confidence=min_confidence, min_quality=min_quality, certain_only=certain_only,
                          since=since, until=until, model_sha256=model_sha, bucket_s=bucket_s)  # fmt: skip
    archive = Archive(output, params)
    results = [archive.report(name) for name in chosen]
    if html_path:
        _write_page(html_path, archive, results, attention, model_path)
    else:
        print_results(results, fmt)


def _write_page(path: Path, archive, results: list, attention: bool, model_path: str | None) -> None:
    """The HTML page; one that shows people is recorded with the output, for `people forget`
    to name (a page is a copy no command can reach again)."""
    from fer_mine.records.people import record_page
    from fer_mine.reports.html import attention_of, to_html
    from fer_mine.reports.registry import REPORTS

    explainer = attention_of(model_path, archive.model_sha256) if attention else None
    with console.status("rendering charts and thumbnails"):
        path.write_text(to_html(results, archive.output, archive.model_sha256, explainer=explainer))
    if any(REPORTS[r.name].about_people for r in results):
        record_page(archive.output, str(path.resolve()))
    console.print(f"report written to {path}")


@click.command()
@click.argument("output")
@click.argument("sql")
@options.report_filters(min_quality=0.0)
def query(output, sql, min_confidence, min_quality, certain_only, since, until, model_sha, fmt) -> None:
    """Run SQL over the views faces, images, errors and videos of a `fer-mine run` output.

    In faces and images, the column `image` names one photo or one sampled video frame. faces
    holds every recorded face unless a filter option is given (reports leave out faces under
    quality 0.2 by default); a filter that leaves faces out is said under the result.

    \b
    Example: fer-mine query mined/ "SELECT emotion, count(*) FROM faces GROUP BY 1"
    """
    from fer_mine.reports.archive import Archive

    params = ReportParams(min_confidence=min_confidence, min_quality=min_quality, certain_only=certain_only,
                          since=since, until=until, model_sha256=model_sha)  # fmt: skip
    archive = Archive(output, params)
    print_results([archive.ask(sql)], fmt)
