"""The command line as a whole: every verb listed, bad input as one line and exit code 2."""

import pytest
from click.testing import CliRunner

from fer_mine.cli import main


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "--data-root", "{missing}"], "data root not found"),
        (["train", "--data-root", "{root}", "--datasets", "nope"], "dataset nope not in"),
        (["train", "--data-root", "{root}", "--preset", "huge"], "Invalid value for '--preset'"),
        (
            ["evaluate", "--data-root", "{root}", "--dataset", "synth", "--model", "{foreign}"],
            "not a fer-mine model card",
        ),
        (
            [
                "evaluate",
                "--data-root",
                "{root}",
                "--dataset",
                "synth",
                "--split",
                "valid",
                "--model",
                "{model}",
            ],
            "has no 'valid' split",
        ),
        (
            ["train", "--data-root", "{root}", "--teacher", "{missing}"],
            "nothing not found: give a model folder",
        ),
        (["train", "--data-root", "{root}", "--init", "{foreign}"], "not a fer-mine model card"),
        (["run"], "Missing option '--input'"),
        # Beam would drop an option it does not know with a warning: a typo must not pass silently
        (["run", "--input", "{root}", "--output", "{missing}", "--thread", "2"], "unknown option --thread"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(trained, tmp_path, args, message):
    root, out, _ = trained
    foreign = tmp_path / "model.json"
    foreign.write_text('{"hello": 1}')
    values = {"missing": tmp_path / "nothing", "root": root, "foreign": foreign, "model": out}
    result = CliRunner().invoke(main, [a.format(**values) for a in args])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_help_lists_every_verb():
    result = CliRunner().invoke(main, ["--help"])
    for verb in ("run", "train", "evaluate", "ensemble", "compare", "report", "query", "model-info"):
        assert verb in result.output


def _photo_with_damaged_exif(path) -> None:
    """A JPEG whose EXIF block points past its end: Pillow warns while reading it."""
    import struct

    import cv2
    import numpy as np

    jpeg = cv2.imencode(".jpg", np.full((200, 200, 3), 128, np.uint8))[1].tobytes()
    tiff = b"II*\x00" + struct.pack("<IH", 8, 2) + struct.pack("<HHII", 0x010F, 2, 100, 1000)
    tiff += struct.pack("<HHII", 0x8769, 4, 1, 26) + struct.pack("<IH", 0, 5) + b"\x00" * 4
    payload = b"Exif\x00\x00" + tiff
    path.write_bytes(jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + jpeg[2:])


@pytest.mark.parametrize("verbose", [False, True])
def test_library_warnings_stay_out_of_the_output_unless_verbose(tmp_path, verbose):
    """Run as a user does, in a process of its own: Pillow's warning about the damaged EXIF and
    Beam's log lines appear only with --verbose; the photo is processed either way."""
    import subprocess
    import sys

    photos = tmp_path / "photos"
    photos.mkdir()
    _photo_with_damaged_exif(photos / "damaged-exif.jpg")
    command = [sys.executable, "-m", "fer_mine.cli", *(["--verbose"] if verbose else []), "run", "--input",
               str(photos), "--output", str(tmp_path / "out")]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "1 to process" in done.stderr and "tables written" in done.stderr
    noise = [line for line in done.stderr.splitlines() if "Warning" in line or line.startswith("WARNING")]
    assert bool(noise) == verbose, done.stderr


def test_wide_reports_fold_into_tables_that_fit_80_columns():
    from rich.console import Console

    from fer_mine.reports.result import Result
    from fer_mine.reports.text import to_rich

    columns = ["path", "bucket_start_s", "frames", "faces", *(f"emotion_{i}" for i in range(7)), "changes"]
    long_path = "videos/" + "a-very-long-folder-name/" * 4 + "talk.mp4"  # longer than the terminal
    rows = [
        ("videos/party.mp4", 10.0, 10, 12, *(0.1234,) * 7, 3),
        (long_path, 0.0, 10, 9, *(0.5,) * 7, 0),
    ]
    console = Console(width=80, record=True, color_system=None)
    console.print(to_rich(Result("video_timeline", "emotions over each video", columns, rows), 80))
    text = console.export_text()
    assert "…" not in text  # no column head or value cut into an ellipsis
    assert all(len(line) <= 80 for line in text.splitlines())
    for value in (*columns, "videos/party.mp4", "0.1234"):
        assert value in text
    assert text.count("videos/party.mp4") >= 2  # each table of columns led by the row's key
    assert "a-very-long-folder-name" in text and "talk.mp4" in text  # folded, not cut
