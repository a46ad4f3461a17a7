"""Seeded miniature GRPO runs whose held-out pass@1 rises by a clear margin.

They start from the warm-started mini-130k (cached under $RLSCALE_CACHE or ~/.cache/rlscale; the
first use trains it, about a minute on one core).
"""

import json
from pathlib import Path

import pytest

from rlscale.rl.config import load_config
from rlscale.rl.trainer import train

SMOKE = Path(__file__).resolve().parents[1] / "configs" / "smoke.yaml"


def holdout_pass1(run_dir: Path) -> list[float]:
    evals = [json.loads(line) for line in (run_dir / "evals.jsonl").read_text().splitlines()]
    return [e["pass1"] for e in evals if e["eval_set"] == "holdout"]


def test_smoke_run_improves_pass1(tmp_path):
    # The smoke config's training, evaluated only at the start and the end on a larger hold-out.
    cfg = load_config(SMOKE, [f"out={tmp_path}", "eval_every=0", "checkpoint_every=0",
                              "data.holdout_easy=1024", "threads=1"])
    first, last = holdout_pass1(train(cfg, progress=False))
    assert last - first >= 0.08, (first, last)


@pytest.mark.slow
def test_full_smoke_config_as_shipped(tmp_path):
    run_dir = train(load_config(SMOKE, [f"out={tmp_path}", "threads=1"]), progress=False)
    curve = holdout_pass1(run_dir)
    assert len(curve) == 9  # steps 0, 10, ..., 80
    assert curve[-1] - curve[0] >= 0.08, curve
    steps = (run_dir / "steps.jsonl").read_text().splitlines()
    assert json.loads(steps[-1])["D"] == 80 * 32
