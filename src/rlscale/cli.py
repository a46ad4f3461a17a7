"""The one command-line app. Each command is a thin wrapper; the work lives in the subpackages.

Commands are registered from `rlscale.commands.*` modules so that each area owns its own CLI code.

One rule for errors: bad input (an `RlscaleError`: a file, row, field or key at fault; or a path
that cannot be read or written) ends the command with exit code 2 and one line on stderr,
`error: <what and where>`, never a traceback; `rlscale --debug COMMAND ...` shows the traceback.
Exit code 1 is kept for work that failed (a training run of a sweep), not for bad input.
"""

import functools

import typer

from rlscale import __version__
from rlscale.errors import RlscaleError

_debug = {"on": False}  # set by the --debug option of each invocation

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
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks of errors."),
):
    """rlscale: GRPO scaling experiments, scaling laws, forecasts and plans."""
    _debug["on"] = debug


def user_errors(command):
    """The error rule above, around one command."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except (RlscaleError, OSError) as error:
            if _debug["on"]:
                raise
            typer.echo(f"error: {_describe(error)}", err=True)
            raise typer.Exit(2) from None

    return wrapper


def _describe(error: Exception) -> str:
    if isinstance(error, OSError) and not isinstance(error, RlscaleError) and error.filename:
        return f"{error.filename}: {error.strerror or error}"
    return str(error)


def register(name: str, command) -> None:
    app.command(name)(user_errors(command))


# --- command registrations (one line per command; implementations in rlscale/commands/) ---
# BEGIN COMMANDS
from rlscale.commands.demo import demo; register("demo", demo)
from rlscale.commands.pretrain import pretrain; register("pretrain", pretrain)
from rlscale.commands.train import train; register("train", train)
from rlscale.commands.sweep import sweep; register("sweep", sweep)
from rlscale.commands.fit import fit; register("fit", fit)
from rlscale.commands.predict import predict; register("predict", predict)
from rlscale.commands.plan import plan; register("plan", plan)
from rlscale.commands.report import report; register("report", report)
from rlscale.commands.import_runs import import_runs; register("import", import_runs)
from rlscale.commands.verify import verify; register("verify", verify)
# END COMMANDS


if __name__ == "__main__":
    app()
