"""The one command-line app. Each command is a thin wrapper; the work lives in the subpackages.

Commands are registered from `rlscale.commands.*` modules so that each area owns its own CLI code.
"""

import typer

from rlscale import __version__

app = typer.Typer(
    name="rlscale",
    help="Measure, fit, forecast and plan the scaling of RL post-training (GRPO) of LLMs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    rich_markup_mode="markdown",  # docstrings reflow as paragraphs
)


def _version(value: bool):
    if value:
        typer.echo(__version__)
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
):
    """rlscale: GRPO scaling experiments, scaling laws, forecasts and plans."""


# --- command registrations (one line per command; implementations in rlscale/commands/) ---
# BEGIN COMMANDS
from rlscale.commands.demo import demo; app.command("demo")(demo)
from rlscale.commands.warmstart import warmstart; app.command("warmstart")(warmstart)
from rlscale.commands.train import train; app.command("train")(train)
from rlscale.commands.sweep import sweep; app.command("sweep")(sweep)
from rlscale.commands.fit import fit; app.command("fit")(fit)
from rlscale.commands.predict import predict; app.command("predict")(predict)
from rlscale.commands.plan import plan; app.command("plan")(plan)
from rlscale.commands.report import report; app.command("report")(report)
from rlscale.commands.import_runs import import_runs; app.command("import")(import_runs)
from rlscale.commands.verify import verify; app.command("verify")(verify)
# END COMMANDS


if __name__ == "__main__":
    app()
