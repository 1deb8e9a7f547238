"""The chart of each report on the HTML page, where a picture says it better than the table.
Each takes a report's result and returns a PNG data URI, or None when there is nothing to draw;
`registry.py` says which report gets which. matplotlib loads only when a chart is drawn."""

from __future__ import annotations

import base64
import io
from collections.abc import Callable
from functools import wraps

from fer_mine.labels import COLORS
from fer_mine.reports.result import Result

Chart = Callable[[Result], "str | None"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    _pyplot().close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def columns(result: Result, *names: str) -> list[list]:
    index = {c: i for i, c in enumerate(result.columns)}
    return [[row[index[n]] for row in result.rows] for n in names]


def _emotion_columns(result: Result, skip: set[str]) -> list[str]:
    return [c for c in result.columns if c not in skip]


def _titled(draw: Callable) -> Chart:
    """A chart that draws on one axes, titled with the report's question; none for no rows."""

    @wraps(draw)
    def chart(result: Result) -> str | None:
        if not result.rows:
            return None
        fig, ax = draw(result, _pyplot())
        ax.set_title(result.title, fontsize=9)
        return png(fig)

    return chart


@_titled
def share_bars(result: Result, plt):
    """emotions: each emotion's share of the faces."""
    labels, shares = columns(result, "emotion", "share")
    fig, ax = plt.subplots(figsize=(7, 3.2))
    ax.bar(labels, shares, color=[COLORS.get(e, "#999") for e in labels])
    ax.set_ylabel("share of faces")
    return fig, ax


def stacked_shares(key: str) -> Chart:
    """hour_of_day, weekday, month_of_year: emotion shares stacked per `key` bucket."""

    @_titled
    def draw(result: Result, plt):
        import numpy as np

        emotions = _emotion_columns(result, {"hour", "weekday", "day", "month", "faces"})
        buckets = ["no time" if v is None else str(v) for v in columns(result, key)[0]]
        fig, ax = plt.subplots(figsize=(9, 3.4))
        bottom = np.zeros(len(buckets))
        for emotion in emotions:
            values = np.array([v or 0.0 for v in columns(result, emotion)[0]])
            ax.bar(buckets, values, bottom=bottom, label=emotion, color=COLORS.get(emotion))
            bottom += values
        ax.set_ylabel("share of faces")
        ax.legend(fontsize=7, ncol=4, loc="upper center", bbox_to_anchor=(0.5, -0.15))
        return fig, ax

    return draw


@_titled
def person_shares(result: Result, plt):
    """people: each person's emotion shares as one stacked bar (by name where given)."""
    import numpy as np

    emotions = [c for c in result.columns if c in COLORS]
    ids, names = columns(result, "person_id", "name")
    people = [f"{n} ({i})" if n else i for i, n in zip(ids, names, strict=True)][::-1]
    fig, ax = plt.subplots(figsize=(9, 0.9 + 0.32 * len(people)))
    left = np.zeros(len(people))
    for emotion in emotions:
        values = np.array([v or 0.0 for v in columns(result, emotion)[0]][::-1])
        ax.barh(people, values, left=left, label=emotion, color=COLORS[emotion])
        left += values
    ax.set_xlabel("share of the person's faces")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    return fig, ax


@_titled
def trend_lines(result: Result, plt):
    """monthly_trend: one line per emotion over the months."""
    emotions = _emotion_columns(result, {"month", "faces", "happy_trend"})
    months = columns(result, "month")[0]
    fig, ax = plt.subplots(figsize=(9, 3.4))
    for emotion in emotions:
        ax.plot(months, columns(result, emotion)[0], marker="o", label=emotion, color=COLORS.get(emotion))
    ax.set_ylabel("share of faces")
    ax.legend(fontsize=7, ncol=4)
    fig.autofmt_xdate()
    return fig, ax


def _heatmap(plt, matrix, rows: list, cols: list, label: str):
    fig, ax = plt.subplots(figsize=(1.2 + 0.75 * len(cols), 1.0 + 0.4 * len(rows)))
    image = ax.imshow(matrix, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(cols)), cols, rotation=45, ha="right")
    ax.set_yticks(range(len(rows)), rows)
    for i in range(len(rows)):
        for j in range(len(cols)):
            ax.text(j, i, f"{matrix[i, j]:.2g}", ha="center", va="center", fontsize=7, color="white")
    fig.colorbar(image, ax=ax, label=label)
    return fig, ax


@_titled
def folder_heatmap(result: Result, plt):
    """folders: each folder's (first 25) emotion shares."""
    import numpy as np

    rows = columns(result, "folder")[0][:25]
    cols = _emotion_columns(
        result, {"folder", "faces", "dominant_emotion", "dominant_share", "chi_square", "kl_bits"}
    )
    matrix = np.array(
        [[result.rows[i][result.columns.index(c)] or 0 for c in cols] for i in range(len(rows))]
    )
    return _heatmap(plt, matrix, rows, cols, "share of the folder's faces")


def pair_heatmap(first: str, second: str, value: str, label: str, symmetric: bool) -> Chart:
    """cooccurrence, transitions: a value per pair of emotions."""

    @_titled
    def draw(result: Result, plt):
        import numpy as np

        firsts, seconds, values = columns(result, first, second, value)
        names = sorted(set(firsts) | set(seconds))
        matrix = np.zeros((len(names), len(names)))
        for x, y, v in zip(firsts, seconds, values, strict=True):
            matrix[names.index(x), names.index(y)] = v
            if symmetric:
                matrix[names.index(y), names.index(x)] = v
        return _heatmap(plt, matrix, names, names, label)

    return draw


@_titled
def lift_bars(result: Result, plt):
    """combinations: the lift of the (first 15) emotion itemsets."""
    sets, lifts = columns(result, "itemset", "lift")
    fig, ax = plt.subplots(figsize=(7, 0.6 + 0.3 * min(15, len(sets))))
    ax.barh(sets[:15][::-1], lifts[:15][::-1], color="#55a868")
    ax.axvline(1.0, color="gray", linestyle="--")
    ax.set_xlabel("lift (1 = independent)")
    return fig, ax


def timelines(result: Result, most: int = 8) -> str | None:
    """video_timeline: one stacked timeline of emotion shares per video (the first `most`)."""
    import numpy as np

    if not result.rows:
        return None
    plt = _pyplot()
    emotions = _emotion_columns(
        result, {"path", "bucket_start_s", "frames", "faces", "dominant_emotion", "changes"}
    )
    paths, starts = columns(result, "path", "bucket_start_s")
    videos = list(dict.fromkeys(p for p, s in zip(paths, starts, strict=True) if s is not None))
    if not videos:
        return None
    shown = videos[:most]
    fig, axes = plt.subplots(len(shown), 1, figsize=(9, 0.6 + 1.3 * len(shown)), squeeze=False)
    for ax, video in zip(axes[:, 0], shown, strict=True):
        rows = [i for i, (p, s) in enumerate(zip(paths, starts, strict=True)) if p == video and s is not None]
        x = np.array([starts[i] for i in rows], dtype=float)
        width = float(np.diff(x).min()) if len(x) > 1 else 1.0
        bottom = np.zeros(len(rows))
        for emotion in emotions:
            values = np.array([result.rows[i][result.columns.index(emotion)] or 0.0 for i in rows])
            ax.bar(
                x, values, width=width, bottom=bottom, align="edge", color=COLORS.get(emotion), label=emotion
            )
            bottom += values
        ax.set_ylim(0, 1)
        ax.set_ylabel("share", fontsize=7)
        ax.set_title(video, fontsize=8, loc="left")
    axes[-1, 0].set_xlabel("seconds into the video")
    axes[0, 0].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    if len(videos) > most:
        fig.text(0.01, 0.0, f"{len(videos) - most} more videos in the table", fontsize=7)
    fig.suptitle(result.title, fontsize=9, y=1.02)
    return png(fig)
