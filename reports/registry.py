"""Every report in one place: its SQL file (`sql/<name>.sql`, whose first comment line is the
question it answers), the chart the HTML page draws for it, and the parameters its query reads.
A new report is one SQL file and one entry here; the order is that of `--list`, the terminal and
the HTML page."""

from __future__ import annotations

from dataclasses import dataclass

from fer_mine.reports import charts


@dataclass(frozen=True)
class Report:
    name: str
    chart: charts.Chart | None = None  # None: the table alone
    params: tuple[str, ...] = ()  # the ReportParams fields its query reads, besides the filters
    # the faces its figures rest on, beyond the filters: an SQL condition on the `faces` view and
    # what the faces it leaves out are (None: every face the filters keep)
    rests_on: tuple[str, str] | None = None
    # shows who is who (`run --people`): an HTML page holds it only when asked (`--people`)
    about_people: bool = False

    @property
    def sql_file(self) -> str:
        return f"{self.name}.sql"


GROUPS = ("image IN (SELECT image FROM faces GROUP BY image HAVING count(*) >= 2)", "alone in their image")
PERSONS = ("person_id IS NOT NULL", "without a person")


REPORTS: dict[str, Report] = {
    report.name: report
    for report in (
        Report("overview"),
        Report("emotions", charts.share_bars),
        Report("folders", charts.folder_heatmap),
        Report("hour_of_day", charts.stacked_shares("hour")),
        Report("weekday", charts.stacked_shares("day")),
        Report("month_of_year", charts.stacked_shares("month")),
        Report(
            "monthly_trend", charts.trend_lines, rests_on=("taken_at IS NOT NULL", "without an EXIF time")
        ),
        Report("group_photos", rests_on=GROUPS),
        Report(
            "cooccurrence",
            charts.pair_heatmap("emotion_a", "emotion_b", "images", "images", True),
            rests_on=GROUPS,
        ),
        Report("combinations", charts.lift_bars, ("min_images",)),
        Report(
            "transitions",
            charts.pair_heatmap("from_emotion", "to_emotion", "probability", "P(next | current)", False),
        ),
        Report("video_timeline", charts.timelines, ("bucket_s",), ("frame_index IS NOT NULL", "in photos")),
        Report("review", params=("limit",)),
        Report("gallery", params=("per_emotion",)),  # the HTML page shows its faces, not a chart
        Report(
            "people", charts.person_shares, rests_on=PERSONS, about_people=True
        ),  # these four: `run --people`
        Report(
            "person_trend",
            rests_on=("person_id IS NOT NULL AND taken_at IS NOT NULL", "without a person or an EXIF time"),
            about_people=True,
        ),
        Report("together", rests_on=PERSONS, about_people=True),
        # the HTML page shows its faces
        Report("person_gallery", params=("per_person",), rests_on=PERSONS, about_people=True),
    )
}


def chosen_reports(names: tuple[str, ...] | list[str], page: bool, people: bool) -> list[str]:
    """The reports to make: those named, else all; for an HTML page (`page`), the ones about
    people only when asked (`people`): a page is a copy of names and faces that no command
    reaches once written."""
    from fer_mine.errors import FerMineError

    unknown = [n for n in names if n not in REPORTS]
    if unknown:
        raise FerMineError(f"unknown report {', '.join(unknown)}; choose from {', '.join(REPORTS)}")
    return list(names) or [n for n, r in REPORTS.items() if people or not (page and r.about_people)]
