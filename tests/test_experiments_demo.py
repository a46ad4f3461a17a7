"""The demo pipeline end to end: warm start, sweeps, laws, protocols and the report."""

import re
import time

import pytest
import yaml
from typer.testing import CliRunner

from rlscale.cli import app
from rlscale.experiments.demo import run_demo
from rlscale.models import build_model, build_tokenizer, ladder_names
from rlscale.runs import RunTable


def test_demo_pipeline_on_tiny_specs(tmp_path):
    """The demo's machinery on three freshly built sizes and a reuse pair, a few steps each."""
    tokenizer = build_tokenizer()
    models = []
    for name in ladder_names()[:3]:
        path = tmp_path / "models" / name
        build_model(name, seed=0, tokenizer=tokenizer).save_pretrained(path)
        tokenizer.save_pretrained(path)
        models.append(str(path))
    base = {
        "data": {"source": "arithmetic", "tiers": [1], "n_problems": 64, "holdout_easy": 16,
                 "holdout_hard": 0},
        "steps": 4, "prompts_per_step": 8, "group_size": 2, "mini_batch_prompts": 8,
        "max_prompt_tokens": 16, "max_response_tokens": 8, "lr": 1e-3, "eval_every": 1,
        "checkpoint_every": 4,
    }
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base))
    specs = []
    for name, spec in [
        ("1_ladder", {"name": "exp1_ladder", "base": "base.yaml", "grid": {"model": models}}),
        ("2_reuse", {"name": "exp2_reuse", "base": "base.yaml", "overrides": {"model": models[0]},
                     "grid": {"data.reuse_tau": [1, 2]}}),
    ]:
        specs.append(tmp_path / f"{name}.yaml")
        specs[-1].write_text(yaml.safe_dump(spec, sort_keys=False))

    result = run_demo(tmp_path / "out", workers=1, specs=specs)
    assert not [o for s in result.sweeps for o in s.failed]
    table = RunTable.load(result.root)
    assert table.df["experiment"].nunique() == 2 and table.df["run_id"].nunique() == 5
    html = result.report_html.read_text()
    assert result.report_md.exists() and "Findings" in result.report_md.read_text()
    assert 'id="fig-loss-C"' in html or "loss-C" in html
    assert len(re.findall(r"<img ", html)) >= 3

    # a second demo over the same root skips every finished run
    again = run_demo(tmp_path / "out", workers=1, specs=specs)
    assert {o.status for s in again.sweeps for o in s.outcomes} == {"skipped"}


@pytest.mark.slow
def test_quick_demo_from_the_cli(tmp_path):
    """`rlscale demo --quick` as a new user runs it (warm-starts the ladder on a fresh machine)."""
    start = time.perf_counter()
    result = CliRunner().invoke(app, ["demo", "--quick", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "report.html").exists() and (tmp_path / "report.md").exists()
    # the last lines say where the report is (a long path may wrap onto the next line)
    tail = "".join(line.strip() for line in result.output.strip().splitlines()[-3:])
    assert "report:" in tail and str(tmp_path / "report.html") in tail.replace(" ", "")
    assert RunTable.load(tmp_path / "runs").df["model"].nunique() >= 3
    print(f"quick demo wall time: {time.perf_counter() - start:.0f} s")
