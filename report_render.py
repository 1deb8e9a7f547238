"""Report results as rich tables, CSV, JSON, Markdown, and one self-contained HTML page."""

from __future__ import annotations

import base64
import csv
import datetime as dt
import html
import io
import json
from pathlib import Path
from typing import TYPE_CHECKING

from rich.table import Table

from fer_mine.labels import CONTEMPT, EMOTIONS

if TYPE_CHECKING:  # the CLI builds its options from FORMATS without loading DuckDB
    from fer_mine.reports import Result

FORMATS = ("table", "csv", "json", "markdown")
# one color per emotion on every chart
COLORS = dict(
    zip(
        (*EMOTIONS, CONTEMPT),
        ("#c44e52", "#8c613c", "#8172b3", "#f2b701", "#8c8c8c", "#4c72b0", "#55a868", "#da8bc3"),
        strict=True,
    )
)


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4f}".rstrip("0").rstrip(".") if value == value else "NaN"
    return str(value)


def _jsonable(value):
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, float) and value != value:
        return None
    return value


def to_rich(result: Result) -> Table:
    table = Table(*result.columns, title=f"[bold]{result.name}[/bold]: {result.title}", title_justify="left")
    for row in result.rows:
        table.add_row(*(_cell(v) for v in row))
    return table


def to_csv(result: Result) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(result.columns)
    writer.writerows([[_jsonable(v) for v in row] for row in result.rows])
    return buffer.getvalue()


def to_json(results: list[Result]) -> str:
    return json.dumps(
        {r.name: [dict(zip(r.columns, map(_jsonable, row), strict=True)) for row in r.rows] for r in results},
        indent=2,
    )


def to_markdown(result: Result) -> str:
    def esc(text: str) -> str:
        return text.replace("|", "\\|")

    lines = [f"### {result.name}", "", result.title, "", "| " + " | ".join(map(esc, result.columns)) + " |",
             "|" + "---|" * len(result.columns)]  # fmt: skip
    lines += ["| " + " | ".join(esc(_cell(v)) for v in row) + " |" for row in result.rows]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- HTML


def _png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _columns(result: Result, *names: str) -> list[list]:
    index = {c: i for i, c in enumerate(result.columns)}
    return [[row[index[n]] for row in result.rows] for n in names]


def _emotion_columns(result: Result, skip: set[str]) -> list[str]:
    return [c for c in result.columns if c not in skip]


def chart(result: Result) -> str | None:
    """A chart for the report where a picture says it better than the table; None otherwise."""
    import matplotlib
    import numpy as np

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not result.rows:
        return None
    name = result.name
    if name == "emotions":
        labels, shares = _columns(result, "emotion", "share")
        fig, ax = plt.subplots(figsize=(7, 3.2))
        ax.bar(labels, shares, color=[COLORS.get(e, "#999") for e in labels])
        ax.set_ylabel("share of faces")
    elif name in ("hour_of_day", "weekday", "month_of_year"):
        key = {"hour_of_day": "hour", "weekday": "day", "month_of_year": "month"}[name]
        emotions = _emotion_columns(result, {"hour", "weekday", "day", "month", "faces"})
        buckets = ["no time" if v is None else str(v) for v in _columns(result, key)[0]]
        fig, ax = plt.subplots(figsize=(9, 3.4))
        bottom = np.zeros(len(buckets))
        for emotion in emotions:
            values = np.array([v or 0.0 for v in _columns(result, emotion)[0]])
            ax.bar(buckets, values, bottom=bottom, label=emotion, color=COLORS.get(emotion))
            bottom += values
        ax.set_ylabel("share of faces")
        ax.legend(fontsize=7, ncol=4, loc="upper center", bbox_to_anchor=(0.5, -0.15))
    elif name == "monthly_trend":
        emotions = _emotion_columns(result, {"month", "faces", "happy_trend"})
        months = _columns(result, "month")[0]
        fig, ax = plt.subplots(figsize=(9, 3.4))
        for emotion in emotions:
            ax.plot(
                months, _columns(result, emotion)[0], marker="o", label=emotion, color=COLORS.get(emotion)
            )
        ax.set_ylabel("share of faces")
        ax.legend(fontsize=7, ncol=4)
        fig.autofmt_xdate()
    elif name in ("cooccurrence", "transitions", "folders"):
        if name == "folders":
            rows = _columns(result, "folder")[0][:25]
            cols = _emotion_columns(
                result, {"folder", "faces", "dominant_emotion", "dominant_share", "chi_square", "kl_bits"}
            )
            matrix = np.array(
                [[result.rows[i][result.columns.index(c)] or 0 for c in cols] for i in range(len(rows))]
            )
            label = "share of the folder's faces"
        else:
            a, b, value = (
                ("emotion_a", "emotion_b", "images")
                if name == "cooccurrence"
                else ("from_emotion", "to_emotion", "probability")
            )
            firsts, seconds, values = _columns(result, a, b, value)
            rows = cols = sorted(set(firsts) | set(seconds))
            matrix = np.zeros((len(rows), len(cols)))
            for x, y, v in zip(firsts, seconds, values, strict=True):
                matrix[rows.index(x), cols.index(y)] = v
                if name == "cooccurrence":
                    matrix[rows.index(y), cols.index(x)] = v
            label = "images" if name == "cooccurrence" else "P(next | current)"
        fig, ax = plt.subplots(figsize=(1.2 + 0.75 * len(cols), 1.0 + 0.4 * len(rows)))
        image = ax.imshow(matrix, cmap="viridis", aspect="auto")
        ax.set_xticks(range(len(cols)), cols, rotation=45, ha="right")
        ax.set_yticks(range(len(rows)), rows)
        for i in range(len(rows)):
            for j in range(len(cols)):
                ax.text(j, i, f"{matrix[i, j]:.2g}", ha="center", va="center", fontsize=7, color="white")
        fig.colorbar(image, ax=ax, label=label)
    elif name == "video_timeline":
        return _timelines(result)
    elif name == "combinations":
        sets, lifts = _columns(result, "itemset", "lift")
        fig, ax = plt.subplots(figsize=(7, 0.6 + 0.3 * min(15, len(sets))))
        ax.barh(sets[:15][::-1], lifts[:15][::-1], color="#55a868")
        ax.axvline(1.0, color="gray", linestyle="--")
        ax.set_xlabel("lift (1 = independent)")
    else:
        return None
    ax.set_title(result.title, fontsize=9)
    return _png(fig)


def _timelines(result: Result, most: int = 8) -> str | None:
    """One stacked timeline of emotion shares per video (the first `most` videos)."""
    import matplotlib.pyplot as plt
    import numpy as np

    emotions = _emotion_columns(
        result, {"path", "bucket_start_s", "frames", "faces", "dominant_emotion", "changes"}
    )
    paths, starts = _columns(result, "path", "bucket_start_s")
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
    return _png(fig)


def _placeholder(size: int = 96) -> str:
    import cv2
    import numpy as np

    image = np.full((size, size, 3), 235, np.uint8)
    cv2.line(image, (0, 0), (size, size), (180, 180, 180), 2)
    cv2.line(image, (size, 0), (0, size), (180, 180, 180), 2)
    return _jpeg(image)


def _jpeg(image) -> str:
    import cv2

    _, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])
    return "data:image/jpeg;base64," + base64.b64encode(data.tobytes()).decode()


def _source_image(uri: str, frame_index: int | None, cache: dict):
    """The photo, or the video frame, a face was found in; None if it moved since the run."""
    from fer_mine.pipeline.images import FoundFile, ImageError, decode, read_bytes
    from fer_mine.pipeline.video import read_frame

    key = (uri, frame_index)
    if key not in cache:
        file = FoundFile(uri, "", uri)
        if frame_index is not None:
            cache[key] = read_frame(file, frame_index)
        else:
            try:
                cache[key] = decode(file, read_bytes(file)).pixels
            except ImageError:
                cache[key] = None
    return cache[key]


def thumbnail(
    uri: str,
    box: tuple[int, int, int, int],
    size: int = 96,
    cache: dict | None = None,
    frame_index: int | None = None,
    explainer=None,
    eyes: tuple[float, float, float, float] | None = None,
) -> tuple[str, bool]:
    """The face cut from its original image, or a placeholder if the image moved since the run.
    With an `explainer`, the face as the model saw it, under its attention map."""
    import cv2

    from fer_mine.pipeline.defaults import DEFAULT_MARGIN
    from fer_mine.pipeline.detect import Face, crop_face

    image = _source_image(uri, frame_index, {} if cache is None else cache)
    if image is None:
        return _placeholder(size), False
    if explainer is not None:  # cut as `fer-mine run` cut it (margin, eyes level)
        crop = crop_face(image, Face(*box, None, eyes), DEFAULT_MARGIN, eyes is not None)
        if crop.size == 0:
            return _placeholder(size), False
        return _jpeg(explainer.overlay(explainer.explain(crop), size)), True
    crop = crop_face(image, Face(*box, None), 0.1)
    if crop.size == 0:
        return _placeholder(size), False
    return _jpeg(cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)), True


CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;padding:0 1.5rem;max-width:1100px;color:#222}
h1{margin-bottom:.2rem} .meta{color:#666;margin-bottom:2rem}
section{margin:2.5rem 0;border-top:1px solid #ddd;padding-top:1rem}
table{border-collapse:collapse;font-size:13px;margin:.5rem 0} td,th{padding:3px 8px;border-bottom:1px solid #eee;text-align:right}
td:first-child,th:first-child{text-align:left} th{background:#f5f5f5}
img.chart{max-width:100%} .faces{display:flex;flex-wrap:wrap;gap:6px} .face{text-align:center;font-size:11px;color:#555}
.face img{display:block;border-radius:4px} .missing{outline:2px dashed #c44}
nav a{margin-right:.8rem;font-size:13px}
"""


def to_html(results: list[Result], output: Path, model: str, max_rows: int = 40, explainer=None) -> str:
    cache: dict = {}
    missing = 0
    parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>fer-mine report</title>"
             f"<style>{CSS}</style></head><body><h1>fer-mine report</h1>"
             f"<div class='meta'>{html.escape(str(output))} &middot; model {html.escape(model[:12])} &middot; "
             f"generated {dt.datetime.now().strftime('%Y-%m-%d %H:%M')}</div><nav>"]  # fmt: skip
    parts += [f"<a href='#{r.name}'>{r.name}</a>" for r in results]
    parts.append("</nav>")
    for result in results:
        parts.append(f"<section id='{result.name}'><h2>{result.name}</h2><p>{html.escape(result.title)}</p>")
        if result.name == "gallery":
            index = {c: i for i, c in enumerate(result.columns)}
            by_emotion: dict[str, list] = {}
            for row in result.rows:
                by_emotion.setdefault(row[index["emotion"]], []).append(row)
            if explainer is not None:
                parts.append(
                    f"<p>Each face under the model's attention map ({html.escape(explainer.note)}).</p>"
                )
            for emotion, rows in by_emotion.items():
                parts.append(f"<h3>{html.escape(emotion)}</h3><div class='faces'>")
                for row in rows:
                    box = tuple(int(row[index[k]]) for k in ("box_x", "box_y", "box_w", "box_h"))
                    eyes = tuple(
                        row[index[k]] for k in ("right_eye_x", "right_eye_y", "left_eye_x", "left_eye_y")
                    )
                    eyes = eyes if row[index["aligned"]] and None not in eyes else None
                    frame, time_s = row[index["frame_index"]], row[index["video_time_s"]]
                    src, found = thumbnail(row[index["uri"]], box, cache=cache, frame_index=frame,
                                           explainer=explainer, eyes=eyes)  # fmt: skip
                    missing += not found
                    at = "" if time_s is None else f" at {time_s:.1f} s"
                    tip = html.escape(f"{row[index['path']]}{at} #{row[index['face_index']]}")
                    note = "" if found else " (image moved)"
                    parts.append(
                        f"<div class='face'><img src='{src}' width='96' height='96' alt='{tip}' title='{tip}'"
                        f"{'' if found else ' class=missing'}>{row[index['confidence']]:.2f}{note}</div>"
                    )
                parts.append("</div>")
            parts.append("</section>")
            continue
        picture = chart(result)
        if picture:
            parts.append(f"<img class='chart' src='{picture}' alt='{result.name} chart'>")
        shown = result.rows[:max_rows]
        parts.append("<table><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in result.columns) + "</tr>")
        for row in shown:
            parts.append("<tr>" + "".join(f"<td>{html.escape(_cell(v))}</td>" for v in row) + "</tr>")
        parts.append("</table>")
        if len(result.rows) > len(shown):
            parts.append(
                f"<p>{len(result.rows) - len(shown)} more rows: see <code>fer-mine report --name {result.name}</code></p>"
            )
        parts.append("</section>")
    if missing:
        parts.insert(
            3,
            f"<p class='missing'>{missing} thumbnails show a placeholder: their images moved since the run.</p>",
        )
    parts.append("</body></html>")
    return "\n".join(parts)
