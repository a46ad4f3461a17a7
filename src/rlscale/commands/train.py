"""`rlscale train CONFIG [key=value ...] [--resume]`: one GRPO run."""

from pathlib import Path

import typer


def train(
    config: Path = typer.Argument(..., help="Training config (YAML), e.g. configs/smoke.yaml."),
    overrides: list[str] = typer.Argument(
        None, help="key=value overrides, dotted for sections: out=runs lr=3e-3 data.reuse_tau=4"),
    resume: bool = typer.Option(
        False, "--resume", help="Continue the run from its latest checkpoint (records after it "
                                "are dropped and redone); starts it if there is none."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
):
    """Post-train a model with GRPO (the paper's recipe) and log steps and evals to a run dir."""
    from rlscale.rl.config import load_config
    from rlscale.rl.trainer import train as run_training

    cfg = load_config(config, overrides or [])
    run_dir = run_training(cfg, resume=resume, progress=not quiet)
    typer.echo(f"run: {run_dir}")
