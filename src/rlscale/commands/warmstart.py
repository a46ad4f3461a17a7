"""`rlscale warmstart`: supervised warm start of the miniature ladder, cached."""

from pathlib import Path

import typer


def warmstart(
    sizes: str = typer.Option(
        "", "--sizes", help="Comma-separated ladder sizes (default: the whole ladder)."
    ),
    band: tuple[float, float] = typer.Option(
        (0.15, 0.40), "--band", help="Held-out pass@1 band to stop in (low high)."
    ),
    root: Path | None = typer.Option(
        None, "--root", help="Cache directory (default: $RLSCALE_CACHE or ~/.cache/rlscale/ladder)."
    ),
    variant: str = typer.Option("base", "--variant", help="base or instruct."),
    seed: int = typer.Option(0, "--seed", help="Seed of initialisation, data and checks."),
    threads: int = typer.Option(0, "--threads", help="torch threads (0: all cores)."),
):
    """Warm-start ladder sizes on the built-in arithmetic task until pass@1 enters the band."""
    from rich.console import Console
    from rich.table import Table

    from rlscale.models import LADDER
    from rlscale.models.warmstart import VARIANTS, default_root, warmstart_progress
    from rlscale.models.warmstart import warmstart as run_warmstart
    from rlscale.threads import set_torch_threads

    console = Console()
    names = [s.strip() for s in sizes.split(",") if s.strip()] or list(LADDER)
    unknown = [n for n in names if n not in LADDER]
    if unknown:
        raise typer.BadParameter(f"unknown sizes {unknown}; known: {', '.join(LADDER)}",
                                 param_hint="--sizes")
    if variant not in VARIANTS:
        raise typer.BadParameter(f"must be one of {VARIANTS}", param_hint="--variant")
    if not 0 <= band[0] < band[1] <= 1:
        raise typer.BadParameter(f"need 0 <= low < high <= 1, got {band}", param_hint="--band")
    set_torch_threads(threads or None)
    table = Table("size", "N non-emb", "variant", "steps", "wall s", "pass@1", "in band", "cached",
                  title=f"warm start (cache: {root or default_root()})")
    with warmstart_progress(console=console) as progress:
        for name in names:
            result = run_warmstart(name, variant=variant, seed=seed, root=root, band=band,
                                   progress=progress)
            table.add_row(name, f"{LADDER[name].non_embedding_params:,}", variant,
                          str(result.steps), f"{result.wall_time:.1f}", f"{result.pass1:.3f}",
                          "yes" if result.in_band else "no", "yes" if result.cached else "no")
    console.print(table)
