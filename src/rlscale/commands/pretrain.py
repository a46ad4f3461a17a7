"""`rlscale pretrain`: the miniature family (shipped weights, or built and cached here)."""

from pathlib import Path

import typer


def pretrain(
    sizes: str = typer.Option("", "--sizes", help="Comma-separated sizes (default: all)."),
    variant: str = typer.Option("base", "--variant", help="base, instruct or all."),
    root: Path | None = typer.Option(
        None, "--root", help="Cache directory (default: $RLSCALE_CACHE or ~/.cache/rlscale/ladder)."),
    rebuild: bool = typer.Option(
        False, "--rebuild", help="Build into the cache even where shipped weights match."),
    ship: bool = typer.Option(
        False, "--ship", help="Copy the built members into the package's weights (maintainers)."),
    workers: int = typer.Option(2, "--workers", help="Sizes built at once."),
    threads: int = typer.Option(1, "--threads", help="torch threads per worker."),
    recipe: Path | None = typer.Option(
        None, "--recipe", help="A family recipe YAML (e.g. configs/family-staged.yaml; default: "
                               "the shipped recipe)."),
):
    """Show the pretrained miniature family, building any member that is not shipped.

    Every size is pretrained the same way (same corpus, steps and learning rate; docs/miniature.md).
    The shipped weights are used when their recipe matches; `--rebuild` reproduces them here
    (about 2 hours on 2 cores), `--ship` writes a rebuild into the package.
    """
    from rich.console import Console
    from rich.table import Table

    from rlscale.models import LADDER
    from rlscale.pretrain.family import (
        FAMILY_CONFIG,
        VARIANTS,
        build_family,
        load_recipe,
        member_record,
        ship_member,
        shipped_path,
    )

    console = Console()
    names = [s.strip() for s in sizes.split(",") if s.strip()] or list(LADDER)
    unknown = [n for n in names if n not in LADDER]
    if unknown:
        raise typer.BadParameter(f"unknown sizes {unknown}; known: {', '.join(LADDER)}",
                                 param_hint="--sizes")
    if variant not in (*VARIANTS, "all"):
        raise typer.BadParameter(f"must be one of {VARIANTS} or 'all'", param_hint="--variant")
    if workers < 1 or threads < 1:
        raise typer.BadParameter("must be >= 1", param_hint="--workers/--threads")
    config = load_recipe(recipe) if recipe is not None else FAMILY_CONFIG
    variants = VARIANTS if variant == "all" else (variant,)
    paths = {(n, v): shipped_path(n, v, config) for n in names for v in variants}
    todo = [n for n in names if rebuild or ship or any(paths[(n, v)] is None for v in variants)]
    built = build_family(todo, variants, root=root, config=config, workers=workers,
                         threads=threads, console=console) if todo else {}
    table = Table("size", "variant", "N", "source", "steps", "wall s", "final loss",
                  "canonical pass@1", "per tier", title="the miniature family")
    for name in names:
        for v in variants:
            path = built.get((name, v)) or paths[(name, v)]
            source = "built" if (name, v) in built else "shipped"
            if ship and (name, v) in built:
                path, source = ship_member(path), "built, shipped"
            record = member_record(path)
            tiers = " ".join(f"{t}:{q:.2f}" for t, q in record["check"]["per_tier"].items())
            table.add_row(name, v, f"{record['N_total']:,}", source, str(record["steps"]),
                          f"{record['wall_time']:.0f}", f"{record['final_loss']:.4f}",
                          f"{record['check']['canonical_pass1']:.3f}", tiers)
    console.print(table)
    for (name, v), path in built.items():  # what a training config's `model` can point at
        console.print(f"{name} {v}: {path}")
