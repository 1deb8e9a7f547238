"""`fer-mine`: the command-line entry point. It assembles the group from the commands in
`commands/` (one module per area), renders errors as one line, and keeps library log lines and
warnings out of the user's output unless `--verbose` (logs.py)."""

from __future__ import annotations

import sys

import click

from fer_mine.commands.evaluate import evaluate
from fer_mine.commands.explain import explain
from fer_mine.commands.models import calibrate, compare, ensemble, model_info, quantize
from fer_mine.commands.output import console
from fer_mine.commands.people import people
from fer_mine.commands.report import query, report
from fer_mine.commands.run import compact, run
from fer_mine.commands.train import train
from fer_mine.errors import FerMineError
from fer_mine.logs import quiet_libraries


class FerMineGroup(click.Group):
    """Turns FerMineError into a one-line message and exit code 2, never a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except FerMineError as exc:
            console.print(f"[red]Error:[/red] {exc}", highlight=False, soft_wrap=True)
            ctx.exit(2)


def _shipped_model_line() -> str:
    """One line on the model fer-mine runs by default, read from its card (JSON only, no torch)."""
    from fer_mine.amacnn.catalog import default_card_json

    card = default_card_json()
    if card is None:
        return "No shipped model found: pass --model."
    metrics = card.get("metrics", {})
    private = metrics.get("fer2013/test", {}).get("PrivateTest", {}).get("accuracy")
    with_tta = metrics.get("fer2013/test+tta", {}).get("PrivateTest", {}).get("accuracy")
    score = f", FER-2013 PrivateTest accuracy {private:.1%}" if private else ""
    score += f" ({with_tta:.1%} with the flip TTA `run` uses)" if with_tta else ""
    return f"Default model: {card['name']} (sha256 {card['sha256'][:12]}){score}. See `fer-mine model-info`."


@click.group(
    cls=FerMineGroup, context_settings={"help_option_names": ["-h", "--help"]}, epilog=_shipped_model_line()
)
@click.version_option(package_name="fer-mine")
@click.option("--verbose", is_flag=True, help="Show the log lines and warnings of Beam, absl and Pillow.")
@click.pass_context
def main(ctx: click.Context, verbose: bool) -> None:
    """Mine facial-emotion patterns from image archives.

    \b
      fer-mine run --input photos/ --output mined/   find faces, classify, write Parquet
      fer-mine report mined/                          emotion-pattern reports (DuckDB SQL)
      fer-mine query mined/ "SELECT ..."              ad-hoc SQL over the mined tables
      fer-mine people list mined/                     who is in the faces (after run --people)
      fer-mine train --datasets all                   train the AMACNN network
      fer-mine evaluate --dataset fer2013             accuracy, P/R/F1, confusion matrix
      fer-mine model-info                             presets and the shipped model
    """
    quiet_libraries(verbose)
    ctx.obj = {"verbose": verbose}  # for commands that start workers of their own


for command in (
    train,
    evaluate,
    ensemble,
    compare,
    quantize,
    calibrate,
    model_info,
    run,
    compact,
    explain,
    report,
    query,
    people,
):
    main.add_command(command)

if __name__ == "__main__":
    sys.exit(main())
