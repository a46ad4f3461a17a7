"""TrainConfig: paper defaults, YAML + key=value overrides, errors that name the key."""

from pathlib import Path

import pytest

from rlscale.errors import ConfigError
from rlscale.rl.config import TrainConfig, load_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_defaults_are_the_paper_recipe():
    c = TrainConfig(model="some/dir")
    assert (c.prompts_per_step, c.group_size, c.mini_batch_prompts, c.epochs) == (512, 8, 128, 1)
    assert (c.lr, c.weight_decay, c.grad_clip) == (1e-6, 0.1, 1.0)
    assert (c.kl_coef, c.kl_clamp, c.clip_low, c.clip_high) == (0.001, 10.0, 0.2, 0.2)
    assert (c.loss_agg, c.entropy_coef, c.std_normalize) == ("token-mean", 0.0, True)
    assert (c.temperature, c.eval_temperature, c.eval_samples) == (1.0, 0.7, 1)
    assert (c.max_prompt_tokens, c.max_response_tokens) == (2048, 4096)
    assert c.data.order == "curriculum" and c.data.reuse_tau == 1


def test_every_field_is_documented():
    for model in (TrainConfig, TrainConfig.model_fields["data"].annotation):
        for name, info in model.model_fields.items():
            assert info.description, f"{model.__name__}.{name} has no description"


def test_yaml_and_dotted_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model: mini-130k\nlr: 0.001\ndata:\n  n_problems: 900\n")
    c = load_config(path, ["lr=3e-3", "data.reuse_tau=4", "data.eval_sets={gsm: a.parquet}",
                           "group_size=4"])
    assert c.lr == 3e-3 and c.group_size == 4
    assert c.data.n_problems == 900 and c.data.reuse_tau == 4
    assert c.data.eval_sets == {"gsm": "a.parquet"}


@pytest.mark.parametrize("override, key", [
    (["bogus=1"], "bogus"),
    (["data.bogus=1"], "data.bogus"),
    (["group_size=1"], "group_size"),
    (["mini_batch_prompts=100"], "mini_batch_prompts"),
    (["lr=-1"], "lr"),
    (["loss_agg=sum"], "loss_agg"),
    (["total_prompts=1000"], "total_prompts"),
    (["n_for_compute=nominal"], "nominal_n"),
    (["data.n_problems=0"], "data.n_problems"),
    (["data.tiers=[1]", "data.source=x.parquet"], "data.tiers"),
    (["data=3"], "data"),
    (["family_recipe={base: {seed: 1}}"], "family_recipe"),  # model=m is not a family size
    (["model=mini-42k", "family_recipe={base: {sed: 1}}"], "family_recipe.base.sed"),
    (["model=mini-42k", "family_recipe={n_check: 0}"], "family_recipe.n_check"),
])
def test_bad_values_name_the_key(override, key):
    with pytest.raises(ConfigError, match=f"'{key}'"):
        load_config(None, ["model=m", *override])


def test_malformed_input(tmp_path):
    with pytest.raises(ConfigError, match="expected key=value"):
        load_config(None, ["model"])
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a list\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(bad)
    with pytest.raises(ConfigError, match="'model'"):
        load_config(None, [])


def test_config_hash_ignores_execution_only_settings():
    a = TrainConfig(model="m")
    assert a.config_hash() == TrainConfig(model="m", threads=2, out="elsewhere").config_hash()
    assert a.config_hash() != TrainConfig(model="m", lr=2e-6).config_hash()


@pytest.mark.parametrize("name", ["smoke.yaml", "qwen2.5-paper.yaml"])
def test_shipped_configs_load(name):
    c = load_config(CONFIGS / name)
    assert c.prompts_per_step % c.mini_batch_prompts == 0


def test_cli_reports_a_bad_key_and_exits_nonzero(tmp_path):
    from typer.testing import CliRunner

    from rlscale.cli import app

    config = tmp_path / "c.yaml"
    config.write_text("model: m\n")
    result = CliRunner().invoke(app, ["train", str(config), "bogus=1", "--quiet"])
    assert result.exit_code == 2
    assert "error:" in result.output and "'bogus'" in result.output


def test_real_data_files_feed_the_schedule_and_eval_sets(shared_data):
    from rlscale.rl.trainer import load_run_data

    guru = shared_data / "guru_math"
    cfg = load_config(None, [
        "model=m", f"data.source={guru / 'reuse_1_100_512.parquet'}",
        f"data.holdout={guru / 'holdout_500.parquet'}",
        f"data.eval_sets={{gsm8k: {shared_data / 'eval' / 'gsm8k.parquet'}}}",
        "data.eval_limit=50", "prompts_per_step=128", "mini_batch_prompts=32", "steps=2"])
    data = load_run_data(cfg)
    assert len(data.schedule) == 256
    assert {name: len(p) for name, p in data.eval_sets.items()} == {"holdout": 50, "gsm8k": 50}
    # Curriculum: easy -> hard by the reference pass rate.
    rates = [p.pass_rate for p in data.schedule]
    assert rates == sorted(rates, reverse=True)


def test_a_run_pretrains_its_member_by_the_family_recipe_it_names(tmp_path):
    from rlscale.pretrain.family import FamilyConfig, member_record, shipped_path
    from rlscale.rl.trainer import resolve_model_path

    recipe = {"base": {"steps": 12, "batch_size": 8, "seed": 100}, "n_check": 16}
    config = TrainConfig(model="mini-42k", family_recipe=recipe, family_root=str(tmp_path))
    path = resolve_model_path(config)
    assert path.parent == tmp_path  # built into the cache, not the shipped weights
    assert member_record(path)["recipe_hash"] == \
        FamilyConfig.model_validate(recipe).recipe_hash("mini-42k", "base")
    assert member_record(path)["recipe"]["base"]["seed"] == 100
    shipped = TrainConfig(model="mini-42k", family_root=str(tmp_path))
    assert resolve_model_path(shipped) == shipped_path("mini-42k", "base")
    # the recipe is part of what a run is; runs that name none keep their hash
    assert "family_recipe" not in shipped.hashed_fields()
    assert config.config_hash() != shipped.config_hash()
