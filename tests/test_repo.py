"""The repository keeps its promises to a newcomer: CI runs exactly the README's test command."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_the_readme_test_command_verbatim():
    readme = (ROOT / "README.md").read_text().splitlines()
    start = next(i for i, line in enumerate(readme) if line.startswith("**Run the tests**"))
    command = next(line for line in readme[start:] if line.startswith("python3 -m venv"))
    assert command in (ROOT / ".ci" / "run").read_text().splitlines()


def test_bundled_samples_exist_for_the_readme_main_command():
    assert len(list((ROOT / "samples").rglob("*.jpg"))) == 10


def test_the_results_tables_state_what_the_shipped_cards_record():
    """docs/models.md holds every row below; the README's headline table repeats some of them."""
    import json
    import re

    from fer_mine.amacnn.catalog import CARD_FILE, shipped_model_dir

    models, readme = (ROOT / "docs" / "models.md").read_text(), (ROOT / "README.md").read_text()
    card = json.loads((shipped_model_dir() / CARD_FILE).read_text())
    metrics, int8 = card["metrics"], card["int8"]["metrics"]
    # `run` classifies in int8 on the CPU only where the card keeps it (fer-mine quantize)
    used = (
        "what `fer-mine run` uses on the CPU"
        if card["int8"]["kept"]
        else "`--precision int8`; not the default"
    )
    kind = "int8 with close calls in float32" if "refine_margin" in card["int8"] else "int8"
    rows = {
        f"amacnn-fer2013 + flip TTA, {kind} ({used}) | FER-2013 PrivateTest": int8["fer2013/test+tta"][
            "PrivateTest"
        ],
        f"amacnn-fer2013 + flip TTA, {kind} | FER-2013 test (all)": int8["fer2013/test+tta"],
        "amacnn-fer2013 | FER-2013 PrivateTest": metrics["fer2013/test"]["PrivateTest"],
        "amacnn-fer2013 | FER-2013 test (all)": metrics["fer2013/test"],
        "amacnn-fer2013 + flip TTA (float32: what `fer-mine run` uses on CUDA) | FER-2013 PrivateTest": metrics[
            "fer2013/test+tta"
        ]["PrivateTest"],
    }
    fast = json.loads((shipped_model_dir("amacnn-fer2013-fast") / CARD_FILE).read_text())
    rows |= {
        "amacnn-fer2013-fast | FER-2013 PrivateTest": fast["metrics"]["fer2013/test"]["PrivateTest"],
        "amacnn-fer2013-fast + flip TTA (`--model amacnn-fer2013-fast`) | FER-2013 PrivateTest": fast[
            "metrics"
        ]["fer2013/test+tta"]["PrivateTest"],
        "amacnn-fer2013-fast + flip TTA | FER-2013 test (all)": fast["metrics"]["fer2013/test+tta"],
    }
    ferplus = json.loads((shipped_model_dir("amacnn-ferplus") / CARD_FILE).read_text())
    used = (
        "what `fer-mine run --model amacnn-ferplus` uses on the CPU"
        if ferplus["int8"]["kept"]
        else "not the default"
    )
    rows |= {
        "amacnn-ferplus | FER+ test (majority label)": ferplus["metrics"]["ferplus/test"],
        "amacnn-ferplus + flip TTA | FER+ test (majority label)": ferplus["metrics"]["ferplus/test+tta"],
        f"amacnn-ferplus + flip TTA, int8 ({used}) | FER+ test (majority label)": ferplus["int8"]["metrics"][
            "ferplus/test+tta"
        ],
    }
    in_readme = 0
    for row, recorded in rows.items():
        for text, required in ((models, True), (readme, False)):
            stated = re.search(rf"^\| {re.escape(row)} \| [\d,]+ \| \**([\d.]+)%", text, re.M)
            assert stated or not required, row
            if stated:
                in_readme += text is readme
                decimals = len(stated.group(1).partition(".")[2])  # as many as the table shows
                assert float(stated.group(1)) == round(100 * recorded["accuracy"], decimals), row
    assert in_readme >= 3  # the headline rows: each shipped model as `run` uses it


def test_the_readme_stays_short_and_links_to_every_docs_page():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 250
    for page in sorted((ROOT / "docs").glob("*.md")):
        assert f"docs/{page.name}" in readme, page.name
