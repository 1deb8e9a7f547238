"""Reports on Parquet fixtures with known contents: every number checked by hand."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from fer_mine.cli import main
from fer_mine.labels import EMOTIONS
from fer_mine.records.schema import SCHEMAS
from fer_mine.reports.archive import Archive
from fer_mine.reports.params import ReportParams
from fer_mine.reports.registry import REPORTS

MODEL = "m" * 64
NOW = datetime(2025, 1, 1, tzinfo=timezone.utc)

# (path, taken_at, [(emotion, confidence, runner-up, its probability)])
PHOTOS = [
    ("a/1.jpg", datetime(2024, 3, 4, 10, 0), [("happy", 0.9, "neutral", 0.05), ("happy", 0.8, "neutral", 0.1)]),
    ("a/2.jpg", datetime(2024, 3, 4, 11, 0), [("sad", 0.6, "neutral", 0.1)]),
    ("a/3.jpg", datetime(2024, 4, 6, 10, 30),
     [("happy", 0.7, "neutral", 0.1), ("sad", 0.5, "angry", 0.2), ("angry", 0.35, "sad", 0.3)]),
    ("b/1.jpg", None, [("neutral", 0.95, "sad", 0.01)]),
    ("b/2.jpg", datetime(2024, 4, 7, 22, 0), []),
]  # fmt: skip


def probabilities(emotion: str, confidence: float, second: str, p_second: float) -> dict[str, float]:
    rest = (1 - confidence - p_second) / (len(EMOTIONS) - 2)
    return {f"p_{e}": confidence if e == emotion else p_second if e == second else rest for e in EMOTIONS}


def write_fixture(out: Path, photo_root: Path) -> None:
    faces, images = [], []
    for path, taken, face_list in PHOTOS:
        uri = str(photo_root / path)
        base = {"run_id": "r1", "path": path, "uri": uri, "folder": path.split("/")[0]}
        images.append({**base, "sha256": "s" * 64, "width": 640, "height": 480, "format": "JPEG",
                       "taken_at": taken, "face_count": len(face_list), "detector": "ssd",
                       "model_sha256": MODEL, "tta": True, "precision": "float32", "processed_at": NOW})  # fmt: skip
        for index, (emotion, confidence, second, p_second) in enumerate(face_list):
            faces.append({**base, "image_sha256": "s" * 64, "taken_at": taken, "face_index": index,
                          "box_x": 40 + 150 * index, "box_y": 60, "box_w": 100, "box_h": 120,
                          "detector": "ssd", "detector_score": 0.99, "aligned": False,
                          # sharpness follows confidence: --min-quality 0.9 leaves out the 0.35 face
                          "face_px": 100, "sharpness": 1000 * confidence, "emotion": emotion,
                          "confidence": confidence, "uncertain": confidence < 0.4,
                          **probabilities(emotion, confidence, second, p_second),
                          "model_name": "test", "model_sha256": MODEL, "tta": True, "precision": "float32", "processed_at": NOW})  # fmt: skip
    errors = [
        {"run_id": "r1", "path": p, "uri": p, "folder": "", "stage": "decode", "kind": k, "message": "x",
         "model_sha256": MODEL, "processed_at": NOW}
        for p, k in (("bad.jpg", "corrupt"), ("zero.jpg", "empty_file"))
    ]  # fmt: skip
    for name, rows in (("faces", faces), ("images", images), ("errors", errors)):
        (out / name).mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMAS[name]), out / name / "r1-00000.parquet")


@pytest.fixture
def mined(tmp_path: Path) -> Path:
    photos = tmp_path / "photos"
    rng = np.random.default_rng(0)
    for path, *_ in PHOTOS[:3]:  # b/ photos "moved away" since the run: thumbnails show a placeholder
        (photos / path).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(photos / path), rng.integers(0, 255, (480, 640, 3), dtype=np.uint8))
    out = tmp_path / "mined"
    write_fixture(out, photos)
    return out


def rows(out: Path, name: str, **params) -> list[dict]:
    result = Archive(out, ReportParams(**params)).report(name)
    return [dict(zip(result.columns, r, strict=True)) for r in result.rows]


def approx(value: float) -> object:
    return pytest.approx(value, abs=1e-9)


def test_overview(mined):
    assert {r["metric"]: r["value"] for r in rows(mined, "overview")} == {
        "images": 5, "of which video frames": 0, "videos": 0, "faces": 7, "images without faces": 1, "group photos (2+ faces)": 2,
        "images with an EXIF time": 4, "errors": 2, "errors: corrupt": 1, "errors: empty_file": 1,
    }  # fmt: skip


def test_emotion_distribution(mined):
    result = {r["emotion"]: r for r in rows(mined, "emotions")}
    assert {e: r["faces"] for e, r in result.items()} == {"happy": 3, "sad": 2, "angry": 1, "neutral": 1}
    assert result["happy"]["share"] == approx(3 / 7)
    assert result["happy"]["mean_confidence"] == pytest.approx(0.8, abs=1e-6)


def test_folders_ranked_by_chi_square(mined):
    result = rows(mined, "folders")
    assert [r["folder"] for r in result] == ["b", "a"]
    b, a = result
    # hand-computed: b has 1 neutral face against archive shares 3/7, 2/7, 1/7, 1/7
    assert b["chi_square"] == approx(6.0) and a["chi_square"] == approx(1.0)
    assert b["kl_bits"] == approx(math.log2(7))
    assert (a["dominant_emotion"], a["dominant_share"], a["faces"]) == ("happy", 0.5, 6)
    assert a["sad"] == approx(2 / 6) and a["neutral"] == 0


def test_time_reports(mined):
    hours = {r["hour"]: r for r in rows(mined, "hour_of_day")}
    assert {h: r["faces"] for h, r in hours.items()} == {10: 5, 11: 1, None: 1}
    assert hours[10]["happy"] == approx(3 / 5) and hours[None]["neutral"] == 1
    days = {r["day"]: r["faces"] for r in rows(mined, "weekday")}
    assert days == {"Monday": 3, "Saturday": 3, None: 1}
    months = {r["month"]: r["faces"] for r in rows(mined, "month_of_year")}
    assert months == {3: 3, 4: 3, None: 1}
    trend = rows(mined, "monthly_trend")
    assert [(str(r["month"]), r["faces"]) for r in trend] == [("2024-03-01", 3), ("2024-04-01", 3)]
    assert trend[0]["happy"] == approx(2 / 3) and trend[1]["happy"] == approx(1 / 3)
    assert trend[0]["happy_trend"] == approx(-1 / 3)


def test_group_photos_and_cooccurrence(mined):
    assert rows(mined, "group_photos") == [
        {"group_photos": 2, "all_agree": 1, "agree_share": 0.5, "mean_faces": 2.5}
    ]
    pairs = {(r["emotion_a"], r["emotion_b"]): r["images"] for r in rows(mined, "cooccurrence")}
    assert pairs == {("happy", "happy"): 1, ("angry", "happy"): 1, ("angry", "sad"): 1, ("happy", "sad"): 1}


def test_combinations_support_and_lift(mined):
    result = {r["itemset"]: r for r in rows(mined, "combinations", min_images=1)}
    assert set(result) == {"angry+happy", "angry+sad", "happy+sad", "angry+happy+sad"}
    assert result["angry+happy"]["support"] == approx(0.25) and result["angry+happy"]["lift"] == approx(2.0)
    assert result["happy+sad"]["lift"] == approx(1.0)
    assert result["angry+happy+sad"]["lift"] == approx(4.0)
    assert rows(mined, "combinations") == []  # default: itemsets in 2+ images only


def test_transition_matrix(mined):
    result = {(r["from_emotion"], r["to_emotion"]): (r["transitions"], r["probability"])
              for r in rows(mined, "transitions")}  # fmt: skip
    # folder a in time order: happy, sad, then a/3 whose three labels tie -> highest confidence: happy
    assert result == {("happy", "sad"): (1, 1.0), ("sad", "happy"): (1, 1.0)}


def test_review_list(mined):
    result = rows(mined, "review")
    assert [(r["path"], r["face_index"], r["second_emotion"], r["reason"]) for r in result] == [
        ("a/3.jpg", 2, "sad", "close call + low confidence")
    ]
    assert result[0]["margin"] == pytest.approx(0.05, abs=1e-6)


def test_filters_are_bound_parameters(mined):
    faces = {r["emotion"]: r["faces"] for r in rows(mined, "emotions", min_confidence=0.55)}
    assert faces == {"happy": 3, "sad": 1, "neutral": 1}
    since = {r["emotion"]: r["faces"] for r in rows(mined, "emotions", since=datetime(2024, 4, 1))}
    assert since == {"happy": 1, "sad": 1, "angry": 1}


def test_quality_and_uncertain_filters_say_what_they_left_out(mined):
    """--min-quality and --certain-only leave faces out, and every report counting faces says
    how many it rests on and why the others are missing."""
    archive = Archive(mined, ReportParams(min_quality=0.9))
    result = archive.report("emotions")
    assert {r[0]: r[1] for r in result.rows} == {"happy": 3, "sad": 2, "neutral": 1}  # the angry 0.35 face
    assert result.notes == ["rests on 6 of 7 faces; 1 left out (1 with quality under 0.9)"]
    certain = Archive(mined, ReportParams(certain_only=True, min_confidence=0.55)).report("emotions")
    assert certain.notes == ["rests on 5 of 7 faces; 2 left out (2 with confidence under 0.55, 1 uncertain)"]
    assert Archive(mined).report("emotions").notes == ["rests on 7 of 7 faces"]
    # each report counts the faces its own rows rest on: group photos, the faces with company
    assert Archive(mined).report("group_photos").notes == [
        "rests on 5 of 7 faces; 2 left out (2 alone in their image)"
    ]
    assert Archive(mined).report("monthly_trend").notes == [
        "rests on 6 of 7 faces; 1 left out (1 without an EXIF time)"
    ]
    both = Archive(mined, ReportParams(min_quality=0.9)).report("group_photos").faces
    assert both == {
        "rests_on": 4,
        "recorded": 7,
        "left_out": {"quality under 0.9": 1, "alone in their image": 2},
    }
    assert Archive(mined).report("overview").notes == ["rests on 7 of 7 faces"]
    shown = CliRunner().invoke(main, ["report", str(mined), "--name", "emotions", "--min-quality", "0.9"])
    assert shown.exit_code == 0, shown.output
    assert "1 left out (1 with quality under 0.9)" in " ".join(shown.output.split())
    page = mined.parent / "filtered.html"
    html = CliRunner().invoke(main, ["report", str(mined), "--name", "emotions", "--min-quality", "0.9",
                                     "--html", str(page)])  # fmt: skip
    assert html.exit_code == 0, html.output
    assert "rests on 6 of 7 faces; 1 left out (1 with quality under 0.9)" in page.read_text()


def test_every_report_runs_and_the_cli_formats(mined):
    runner = CliRunner()
    result = runner.invoke(main, ["report", str(mined), "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert list(data) == list(REPORTS)
    assert data["group_photos"]["rows"] == [
        {"group_photos": 2, "all_agree": 1, "agree_share": 0.5, "mean_faces": 2.5}
    ]
    assert data["emotions"]["faces"] == {"rests_on": 7, "recorded": 7, "left_out": {}}
    csv = runner.invoke(main, ["report", str(mined), "--name", "emotions", "--format", "csv"])
    header, happy = csv.stdout.splitlines()[:2]
    assert header == "emotion,faces,share,mean_confidence"
    assert happy.split(",")[:2] == ["happy", "3"]
    assert [float(v) for v in happy.split(",")[2:]] == [approx(3 / 7), pytest.approx(0.8, abs=1e-6)]
    md = runner.invoke(main, ["report", str(mined), "--name", "overview", "--format", "markdown"])
    assert "| images | 5 |" in md.stdout
    listed = runner.invoke(main, ["report", "--list"])
    assert all(name in listed.output for name in REPORTS)
    query = runner.invoke(
        main,
        ["query", str(mined), "SELECT count(*) AS n FROM faces WHERE emotion = 'happy'", "--format", "csv"],
    )
    assert query.stdout.splitlines() == ["n", "3"]


def test_query_counts_every_face_unless_a_filter_is_given_and_then_says_what_it_left_out(mined):
    """A filter is said wherever it leaves faces out: under the table, as a CSV trailer, in JSON."""
    runner = CliRunner()
    count = "SELECT count(*) AS n FROM faces"
    assert runner.invoke(main, ["query", str(mined), count, "--format", "csv"]).stdout.splitlines() == [
        "n",
        "7",
    ]
    filtered = runner.invoke(main, ["query", str(mined), count, "--format", "csv", "--min-quality", "0.9"])
    assert filtered.stdout.splitlines() == [
        "n",
        "6",
        "# rests on 6 of 7 faces; 1 left out (1 with quality under 0.9)",
    ]
    as_json = json.loads(
        runner.invoke(main, ["query", str(mined), count, "--format", "json", "--min-quality", "0.9"]).stdout
    )
    assert as_json["query"] == {"rows": [{"n": 6}], "faces": {"rests_on": 6, "recorded": 7,
                                                              "left_out": {"quality under 0.9": 1}}}  # fmt: skip


def test_a_long_query_title_takes_the_terminal_width_not_the_tables(mined):
    """A one-column result of a long SQL has its title on at most two lines above the table."""
    sql = (
        f"SELECT emotion FROM faces WHERE {' AND '.join(f'path <> {i}::VARCHAR' for i in range(30))} LIMIT 2"
    )
    shown = CliRunner().invoke(main, ["query", str(mined), sql], terminal_width=80)
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    assert lines.index(next(line for line in lines if line.startswith("┏"))) <= 2
    assert all(len(line) <= 80 for line in lines)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["report", "{missing}"], "output folder not found"),
        (["report", "{empty}"], "holds no fer-mine tables"),
        (["report", "{mined}", "--name", "nope"], "unknown report nope"),
        (["query", "{mined}", "SELEKT 1"], "SQL error"),
        (["query", "{mined}", "SELECT * FROM nosuchtable"], "SQL error"),
    ],
)
def test_bad_input_is_a_clear_error(mined, tmp_path, args, message):
    (tmp_path / "empty").mkdir()
    values = {"missing": tmp_path / "nope", "empty": tmp_path / "empty", "mined": mined}
    result = CliRunner().invoke(main, [a.format(**values) for a in args])
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output


def test_foreign_parquet_is_refused(mined):
    pq.write_table(pa.table({"x": [1]}), mined / "faces" / "foreign.parquet")
    result = CliRunner().invoke(main, ["report", str(mined)])
    assert result.exit_code == 2
    assert "another fer-mine schema or tool" in result.output


def test_default_model_is_the_latest_run(mined):
    old = pq.read_table(mined / "images" / "r1-00000.parquet").to_pylist()
    for row in old:
        row.update(model_sha256="o" * 64, processed_at=datetime(2020, 1, 1, tzinfo=timezone.utc))
    pq.write_table(pa.Table.from_pylist(old, schema=SCHEMAS["images"]), mined / "images" / "r0-00000.parquet")
    assert {r["metric"]: r["value"] for r in rows(mined, "overview")}["images"] == 5
    assert {r["metric"]: r["value"] for r in rows(mined, "overview", model_sha256="o" * 64)}["images"] == 5
    assert {r["metric"]: r["value"] for r in rows(mined, "overview", model_sha256="o" * 64)}["faces"] == 0


def test_html_page_is_self_contained_with_charts_and_thumbnails(mined, tmp_path):
    page = tmp_path / "report.html"
    result = CliRunner().invoke(main, ["report", str(mined), "--html", str(page)])
    assert result.exit_code == 0, result.output
    text = page.read_text()
    assert "http://" not in text and "https://" not in text and "src='//" not in text
    assert text.count("class='chart'") >= 8
    assert text.count("data:image/jpeg;base64") == 7  # one thumbnail per face (gallery: 6 per emotion max)
    assert "image moved" in text  # b/1.jpg is gone since the run: placeholder
    # the note on moved images stands between the navigation and the first report, not inside <nav>
    note = text.index("class='missing'")
    assert text.index("</nav>") < note < text.index("<section")


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.mark.skipif(CHROMIUM is None, reason="needs a headless Chromium (.ci/run installs Debian's chromium)")
def test_html_renders_in_headless_chromium_without_network(mined, tmp_path):
    page = tmp_path / "report.html"
    assert CliRunner().invoke(main, ["report", str(mined), "--html", str(page)]).exit_code == 0
    flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
             # any request leaving the machine would fail loudly: resolve every host to nowhere
             "--host-resolver-rules=MAP * ~NOTFOUND"]  # fmt: skip
    dom = subprocess.run([*flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert "<h2>folders</h2>" in dom.stdout
    assert dom.stdout.count('class="chart"') >= 8
    shot = tmp_path / "shot.png"
    subprocess.run([*flags, f"--screenshot={shot}", "--window-size=1200,2400", page.as_uri()],
                   capture_output=True, timeout=120)  # fmt: skip
    image = cv2.imread(str(shot))
    assert image is not None and image.shape[:2] == (2400, 1200)
    assert image.std() > 10  # not a blank page


def test_every_sql_file_is_one_registry_entry_that_names_the_parameters_it_reads():
    """A report is one SQL file and one registry entry: neither exists without the other, and the
    entry lists the parameters its query reads beyond the filters every view applies."""
    import re
    from importlib import resources

    from fer_mine.reports.archive import sql_text

    files = {
        p.name.removesuffix(".sql")
        for p in resources.files("fer_mine.sql").iterdir()
        if p.name.endswith(".sql")
    }
    assert files == set(REPORTS)
    for name, report in REPORTS.items():
        read = set(re.findall(r"getvariable\('(\w+)'\)", sql_text(name)))
        assert read == set(report.params), name
        assert sql_text(name).startswith("-- "), name  # the question it answers, for --list
