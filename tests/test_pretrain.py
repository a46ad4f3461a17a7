"""Pretraining the miniature family: the flawed corpus, the supervised loop (deterministic,
resumable), members built and cached by recipe, and the shipped weights."""

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from rlscale.data import arithmetic_problems, arithmetic_solution
from rlscale.data.arithmetic import arithmetic_steps
from rlscale.models import LADDER, build_model, build_tokenizer
from rlscale.pretrain import corpus as C
from rlscale.pretrain import family as F
from rlscale.pretrain.supervised import PretrainConfig, pretrain

TINY = F.FamilyConfig(base=PretrainConfig(steps=12, batch_size=8, checkpoint_every=4),
                      instruct=PretrainConfig(steps=4, batch_size=8, flaw_rate=0.2, seed=7),
                      n_check=16)
SMALLEST = next(iter(LADDER))


def _steps(text: str) -> tuple[list[tuple[int, str, int, int]], int]:
    """(left, op, right, result) of each step written in a worked solution, and its boxed answer."""
    steps = [(int(a), op, int(b), int(r)) for a, op, b, r in
             re.findall(r"(\d+)([+-])(\d+)=(\d+)", text)]
    return steps, int(re.search(r"\\boxed\{(\d+)\}", text).group(1))


def test_a_flawed_solution_has_one_slip_carried_to_the_answer():
    rng = np.random.default_rng(0)
    for problem in arithmetic_problems(600, seed=3, split="train"):
        steps, boxed = _steps(C.flawed_solution(problem, rng))
        assert len(steps) == len(arithmetic_steps(problem))
        wrong = [r - (a + b if op == "+" else a - b) for a, op, b, r in steps]
        assert sorted(w != 0 for w in wrong) == [False] * (len(steps) - 1) + [True]  # one slip
        assert sum(wrong) in C.SLIPS and all(r >= 0 for *_, r in steps)
        for (_, _, _, result), (left, *_) in zip(steps, steps[1:], strict=False):
            assert left == result  # each step starts from the value written before it
        assert boxed == steps[-1][3] != arithmetic_steps(problem)[-1]  # carried to the answer


def test_corpus_flaw_rate_and_determinism():
    problems = arithmetic_problems(2000, seed=0, split="train")
    texts = C.corpus_texts(problems, flaw_rate=0.5, seed=4)
    assert texts == C.corpus_texts(problems, flaw_rate=0.5, seed=4)
    flawed = np.mean([t != arithmetic_solution(p) for p, t in zip(problems, texts, strict=True)])
    assert abs(flawed - 0.5) < 4 * np.sqrt(0.25 / 2000)
    assert C.corpus_texts(problems, flaw_rate=0.0, seed=4) == [p.solution for p in problems]
    with pytest.raises(ValueError, match="flaw_rate"):
        C.corpus_texts(problems, flaw_rate=1.0, seed=0)


def test_learning_rate_rule():
    config = PretrainConfig(steps=100, lr=3e-3, warmup_steps=10, final_lr_fraction=0.1)
    assert config.peak_lr(128) == pytest.approx(3e-3)
    assert config.peak_lr(32) == pytest.approx(6e-3)  # lr ~ hidden^-1/2
    assert config.learning_rate(0, 128) == pytest.approx(3e-4)
    assert config.learning_rate(10, 128) == pytest.approx(3e-3)
    assert config.learning_rate(99, 128) == pytest.approx(3e-4, rel=0.01)


def _corpus(config):
    return [(p.prompt_text(), t) for p, t in C.pretraining_corpus(
        config.steps * config.batch_size, flaw_rate=config.flaw_rate, seed=config.seed)]


def test_pretraining_resumes_to_the_same_weights(tmp_path):
    config = PretrainConfig(steps=10, batch_size=8, checkpoint_every=4)
    tokenizer = build_tokenizer()
    whole = build_model(SMALLEST, seed=0, tokenizer=tokenizer)
    result = pretrain(whole, tokenizer, _corpus(config), config)
    assert result.steps == 10 and len(result.losses) == 1

    class Killed(Exception):
        pass

    def kill_at_6(step, loss):
        if step == 6:
            raise Killed

    parts = build_model(SMALLEST, seed=0, tokenizer=tokenizer)
    with pytest.raises(Killed):
        pretrain(parts, tokenizer, _corpus(config), config, work_dir=tmp_path, on_step=kill_at_6)
    assert json.loads((tmp_path / "pretrain_state" / "state.json").read_text())["step"] == 4
    resumed = build_model(SMALLEST, seed=0, tokenizer=tokenizer)  # a fresh process's model
    again = pretrain(resumed, tokenizer, _corpus(config), config, work_dir=tmp_path)
    for a, b in zip(whole.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert again.losses == pytest.approx(result.losses)


def test_members_are_built_once_per_recipe(tmp_path):
    base = F.build_member(SMALLEST, "base", root=tmp_path, config=TINY)
    record = F.member_record(base)
    assert record["steps"] == 12 and record["recipe_hash"] == TINY.recipe_hash(SMALLEST, "base")
    assert set(record["check"]["per_tier"]) == {"1", "2", "3", "4", "5", "6"}
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())  # no work left behind
    stamp = (base / "model.safetensors").stat().st_mtime_ns
    assert F.build_member(SMALLEST, "base", root=tmp_path, config=TINY) == base  # cached
    assert (base / "model.safetensors").stat().st_mtime_ns == stamp
    instruct = F.build_member(SMALLEST, "instruct", root=tmp_path, config=TINY)
    assert instruct != base and F.member_record(instruct)["variant"] == "instruct"
    other = TINY.model_copy(update={"base": TINY.base.model_copy(update={"flaw_rate": 0.3})})
    assert other.recipe_hash(SMALLEST, "base") != TINY.recipe_hash(SMALLEST, "base")
    # the stored weights are bfloat16 values, loaded as float32
    from rlscale.models import load_model
    model, _ = load_model(base)
    weight = next(model.parameters())
    assert weight.dtype == torch.float32 and torch.equal(weight, weight.bfloat16().float())


def test_member_path_prefers_matching_shipped_weights(tmp_path, monkeypatch):
    shipped = tmp_path / "weights"
    built = F.build_member(SMALLEST, "base", root=tmp_path / "cache", config=TINY)
    monkeypatch.setattr(F, "SHIPPED", shipped)
    F.ship_member(built, target=shipped)
    assert F.verify_shipped(shipped) == {}
    folder = shipped / F.member_name(SMALLEST, "base")
    assert F.member_path(SMALLEST, "base", root=tmp_path / "other", config=TINY) == folder
    # a different recipe never reuses them: it builds into the cache instead
    other = TINY.model_copy(update={"base": TINY.base.model_copy(update={"steps": 8})})
    assert F.member_path(SMALLEST, "base", root=tmp_path / "other", config=other) != folder
    (folder / "model.safetensors").write_bytes(b"tampered")
    assert F.verify_shipped(shipped) == {f"{folder.name}/model.safetensors": "sha256 differs"}


def test_a_staged_recipe_continues_the_member_before_it(tmp_path, monkeypatch):
    """A staged recipe's base member is the one-stage member continued on its own corpus: taken
    from the shipped weights when those match (never retrained), built on top of them, checked on
    every tier its stages train, and hashed apart from the one-stage member."""
    second = PretrainConfig(steps=4, batch_size=8, lr=1e-3, warmup_steps=2, seed=11,
                            tiers=[1, 2, 3, 4, 5, 6, 7, 8])
    staged = TINY.model_copy(update={"continued": [second]})
    assert staged.recipe_hash(SMALLEST, "base") != TINY.recipe_hash(SMALLEST, "base")
    assert staged.previous("base") == (TINY, "base") and TINY.previous("base") is None
    assert staged.stages("instruct") == [TINY.base, second, TINY.instruct]
    shipped = tmp_path / "weights"
    monkeypatch.setattr(F, "SHIPPED", shipped)
    F.ship_member(F.build_member(SMALLEST, "base", root=tmp_path / "first", config=TINY),
                  target=shipped)
    first = shipped / F.member_name(SMALLEST, "base")

    def forbid_fresh_models(*args, **kwargs):
        raise AssertionError("the first stage was retrained instead of reused")

    monkeypatch.setattr(F, "build_model", forbid_fresh_models)
    built = F.build_member(SMALLEST, "base", root=tmp_path / "cache", config=staged)
    record = F.member_record(built)
    assert record["recipe_hash"] == staged.recipe_hash(SMALLEST, "base") and record["steps"] == 4
    assert set(record["check"]["per_tier"]) == {str(t) for t in range(1, 9)}
    assert not (tmp_path / "cache" / f"{F.member_name(SMALLEST, 'base')}-"
                f"{TINY.recipe_hash(SMALLEST, 'base')}").exists()  # stage 1 came from shipped
    # the same as continuing the stored first-stage weights by hand with the second stage
    from rlscale.models import load_model
    by_hand, tokenizer = load_model(first)
    corpus = [(p.prompt_text(), t) for p, t in C.pretraining_corpus(
        32, flaw_rate=second.flaw_rate, seed=11, tiers=second.tiers)]
    pretrain(by_hand, tokenizer, corpus, second)
    model, _ = load_model(built)
    for a, b in zip(model.state_dict().values(), by_hand.state_dict().values(), strict=True):
        assert torch.equal(a, b.bfloat16().float())


def test_family_recipe_files(tmp_path):
    """The shipped staged recipe loads and continues today's one-stage family; a bad recipe file
    names the file and the key."""
    from rlscale.errors import ConfigError

    staged = F.load_recipe(Path(__file__).parents[1] / "configs" / "family-staged.yaml")
    assert staged.previous("base") == (F.FAMILY_CONFIG, "base")
    assert staged.check_tiers() == list(range(1, 9)) and F.FAMILY_CONFIG.check_tiers() is None
    bad = tmp_path / "recipe.yaml"
    bad.write_text("continued:\n  - steps: 0\n")
    with pytest.raises(ConfigError, match=r"recipe.yaml: key 'continued.0.steps'"):
        F.load_recipe(bad)
    bad.write_text("stage2: {}\n")
    with pytest.raises(ConfigError, match="key 'stage2'"):
        F.load_recipe(bad)


def test_a_changed_task_never_reuses_shipped_weights(monkeypatch):
    """The recipe hash covers what the corpus holds, not only the stage's config: a task with one
    more tier (same config, same seed) gets a new hash, so the shipped members are not its own."""
    from rlscale.data import arithmetic

    name = "mini-42k"
    before = F.FAMILY_CONFIG.recipe_hash(name, "base")
    assert F.shipped_path(name, "base") is not None
    monkeypatch.setattr(arithmetic, "DEFAULT_TIERS", (*arithmetic.DEFAULT_TIERS, 7))
    assert F.FAMILY_CONFIG.recipe_hash(name, "base") != before
    assert F.shipped_path(name, "base") is None
    monkeypatch.setattr(C, "SLIPS", (-2, 2))  # a different slip set changes it again
    monkeypatch.setattr(arithmetic, "DEFAULT_TIERS", arithmetic.DEFAULT_TIERS[:-1])
    assert F.FAMILY_CONFIG.recipe_hash(name, "base") != before


def test_bad_member_requests():
    from rlscale.errors import ConfigError

    with pytest.raises(ConfigError, match="variant"):
        F.member_path(SMALLEST, "chat")
    with pytest.raises(ConfigError, match="unknown ladder size"):
        F.member_path("mini-huge")


# ------------------------------------------------------------------- the shipped family itself
def test_shipped_family_matches_its_manifest_and_recipe():
    """Every ladder size ships in both variants, hashes as its manifest says, and was built by
    today's recipe (so the demo never silently rebuilds or uses stale weights)."""
    assert F.verify_shipped() == {}
    for name in LADDER:
        for variant in F.VARIANTS:
            path = F.shipped_path(name, variant)
            assert path is not None, f"{name} {variant}: not shipped for the current recipe"
            record = F.member_record(path)
            assert record["steps"] == F.FAMILY_CONFIG.stage(variant).steps


def test_shipped_family_starts_better_with_size():
    """The family property: the same recipe at every size, and larger members start better."""
    base = [F.member_record(F.shipped_path(n, "base"))["check"]["canonical_pass1"] for n in LADDER]
    assert base == sorted(base)
    instruct = [F.member_record(F.shipped_path(n, "instruct"))["check"]["canonical_pass1"]
                for n in LADDER]
    assert all(i > b for i, b in zip(instruct, base, strict=True))


@pytest.mark.slow
def test_rebuilding_the_smallest_member_reproduces_the_shipped_file(tmp_path):
    """The build command is deterministic: the smallest size rebuilt here equals the shipped
    weights bit for bit (single-threaded, as the family was built)."""
    torch.set_num_threads(1)
    rebuilt = F.build_member(SMALLEST, "base", root=tmp_path)
    shipped = F.shipped_path(SMALLEST, "base")

    def digest(path):
        return hashlib.sha256((path / "model.safetensors").read_bytes()).hexdigest()

    assert digest(rebuilt) == digest(shipped)
