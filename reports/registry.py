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

    @property
    def sql_file(self) -> str:
        return f"{self.name}.sql"


REPORTS: dict[str, Report] = {
    report.name: report
    for report in (
        Report("overview"),
        Report("emotions", charts.share_bars),
        Report("folders", charts.folder_heatmap),
        Report("hour_of_day", charts.stacked_shares("hour")),
        Report("weekday", charts.stacked_shares("day")),
        Report("month_of_year", charts.stacked_shares("month")),
        Report("monthly_trend", charts.trend_lines),
        Report("group_photos"),
        Report("cooccurrence", charts.pair_heatmap("emotion_a", "emotion_b", "images", "images", True)),
        Report("combinations", charts.lift_bars, ("min_images",)),
        Report(
            "transitions",
            charts.pair_heatmap("from_emotion", "to_emotion", "probability", "P(next | current)", False),
        ),
        Report("video_timeline", charts.timelines, ("bucket_s",)),
        Report("review", params=("limit",)),
        Report("gallery", params=("per_emotion",)),  # the HTML page shows its faces, not a chart
        Report("people", charts.person_shares),  # these four: `run --people`; empty without it
        Report("person_trend"),
        Report("together"),
        Report("person_gallery", params=("per_person",)),  # the HTML page shows its faces
    )
}
