"""Every shipped training config and experiment spec builds valid training configs."""

from pathlib import Path

import pytest

from rlscale.experiments import expand, load_spec
from rlscale.experiments.demo import demo_specs
from rlscale.experiments.spec import validate_runs
from rlscale.rl.config import load_config

REPO = Path(__file__).resolve().parents[1]
SPECS = sorted(REPO.glob("configs/**/exp*.yaml"))


@pytest.mark.parametrize("path", SPECS, ids=lambda p: str(p.relative_to(REPO)))
def test_experiment_specs_validate(path):
    runs = expand(*load_spec(path))
    validate_runs(runs, path)
    assert len({r.run_id for r in runs}) == len(runs) > 1


@pytest.mark.parametrize("mode", ["default", "quick", "full"])
def test_demo_specs_validate_and_meet_the_demo_contract(mode):
    from rlscale.experiments.demo import WARMUP_STEPS
    from rlscale.models import LADDER

    runs_by_name = {}
    for path in demo_specs(mode):
        runs = expand(*load_spec(path))
        validate_runs(runs, path)
        runs_by_name.setdefault(runs[0].experiment, []).extend(r.config("runs") for r in runs)
    ladder = runs_by_name["exp1_ladder"]
    sizes = sorted({LADDER[c.model].non_embedding_params for c in ladder})
    if mode == "quick":
        assert len(sizes) >= 3  # the law needs 3+ sizes
    else:  # the family shows scaling: 5+ sizes over 30x, 30+ evaluations per curve
        assert len(sizes) >= 5 and sizes[-1] / sizes[0] >= 30
        for c in ladder:
            evals = [s for s in range(0, c.steps + 1, c.eval_every) if s > WARMUP_STEPS]
            assert len(evals) >= 30, (c.run_id, len(evals))
    taus = {c.data.reuse_tau for c in runs_by_name["exp2_reuse"]}
    assert 1 in taus and len(taus) >= 2
    # data reuse compares runs at equal total data
    assert len({c.steps * c.prompts_per_step for c in runs_by_name["exp2_reuse"]}) == 1


ABLATIONS = sorted((REPO / "src/rlscale/experiments/specs/ablations").glob("*.yaml"))


@pytest.mark.parametrize("path", ABLATIONS, ids=lambda p: p.name)
def test_ablation_specs_validate_and_are_one_pass(path):
    # docs/miniature.md quotes their figures: each must still expand to valid runs, one pass over
    # its problems (as the demo's ladder), with 30+ evaluations after the warm-up clip
    from rlscale.experiments.demo import WARMUP_STEPS

    runs = expand(*load_spec(path))
    validate_runs(runs, path)
    for c in (r.config("runs") for r in runs):
        assert c.data.n_problems == c.steps * c.prompts_per_step
        assert len([s for s in range(0, c.steps + 1, c.eval_every) if s > WARMUP_STEPS]) >= 30


@pytest.mark.parametrize("path", ["configs/smoke.yaml", "configs/qwen2.5-paper.yaml"])
def test_training_configs_load(path):
    assert load_config(REPO / path).group_size >= 2
