"""One self-contained HTML page of reports: each report's chart (registry.py) and table, and the
gallery's faces cut from their original images (under the model's attention map on request)."""

from __future__ import annotations

import base64
import datetime as dt
import html
from pathlib import Path

from fer_mine.defaults import DEFAULT_MARGIN
from fer_mine.errors import FerMineError
from fer_mine.media.detect import Face, crop_face
from fer_mine.media.images import FoundFile, ImageError, decode, read_bytes
from fer_mine.media.video import read_frame
from fer_mine.reports.registry import REPORTS
from fer_mine.reports.result import Result
from fer_mine.reports.text import cell


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
h1{margin-bottom:.2rem} .meta{color:#666;margin-bottom:2rem} .coverage{color:#666;font-size:.9em}
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
        parts += [f"<p class='coverage'>{html.escape(note)}</p>" for note in result.notes]
        if result.name in GALLERIES:
            gallery, moved = _gallery(result, cache, explainer, GALLERIES[result.name])
            parts += [*gallery, "</section>"]
            missing += moved
            continue
        chart = REPORTS[result.name].chart
        picture = chart(result) if chart else None
        if picture:
            parts.append(f"<img class='chart' src='{picture}' alt='{result.name} chart'>")
        shown = result.rows[:max_rows]
        parts.append("<table><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in result.columns) + "</tr>")
        for row in shown:
            parts.append("<tr>" + "".join(f"<td>{html.escape(cell(v))}</td>" for v in row) + "</tr>")
        parts.append("</table>")
        if len(result.rows) > len(shown):
            parts.append(
                f"<p>{len(result.rows) - len(shown)} more rows: see <code>fer-mine report --name {result.name}</code></p>"
            )
        parts.append("</section>")
    if missing:  # right after the navigation, before the first report
        parts.insert(
            parts.index("</nav>") + 1,
            f"<p class='missing'>{missing} thumbnails show a placeholder: their images moved since the run.</p>",
        )
    parts.append("</body></html>")
    return "\n".join(parts)


# Reports whose rows are faces, shown as thumbnails grouped by this column
GALLERIES = {"gallery": "emotion", "person_gallery": "person"}


def _gallery(result: Result, cache: dict, explainer, group: str) -> tuple[list[str], int]:
    """A report's faces as thumbnails grouped by `group`; how many images moved since the run."""
    parts, missing = [], 0
    index = {c: i for i, c in enumerate(result.columns)}
    groups: dict[str, list] = {}
    for row in result.rows:
        groups.setdefault(str(row[index[group]]), []).append(row)
    if explainer is not None:
        parts.append(f"<p>Each face under the model's attention map ({html.escape(explainer.note)}).</p>")
    for heading, rows in groups.items():
        parts.append(f"<h3>{html.escape(heading)}</h3><div class='faces'>")
        for row in rows:
            box = tuple(int(row[index[k]]) for k in ("box_x", "box_y", "box_w", "box_h"))
            eyes = tuple(row[index[k]] for k in ("right_eye_x", "right_eye_y", "left_eye_x", "left_eye_y"))
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
                f"{'' if found else ' class=missing'}>{caption(row, index, group)}{note}</div>"
            )
        parts.append("</div>")
    return parts, missing


def caption(row: tuple, index: dict[str, int], group: str) -> str:
    """Under a thumbnail: its confidence, and its emotion where faces are grouped otherwise."""
    confidence = f"{row[index['confidence']]:.2f}"
    return confidence if group == "emotion" else f"{html.escape(row[index['emotion']])} {confidence}"


def attention_of(model_path: str | None, model_sha256: str):
    """The explainer that draws gallery faces under their attention map: it must be the model
    that classified them."""
    from fer_mine.amacnn.explain import Explainer

    explainer = Explainer(model_path)
    if explainer.card.sha256 != model_sha256:
        raise FerMineError(
            f"the report's faces were classified by model {model_sha256[:12]}, not "
            f"{explainer.card.name} ({explainer.card.sha256[:12]}): pass that model as --model"
        )
    return explainer
