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
