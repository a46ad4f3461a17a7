"""The miniature model family: every ladder size pretrained the same way, shipped, rebuildable.

A real family (Qwen2.5 0.5B ... 72B) is one recipe at several sizes: the same corpus, the same
token budget, so the bigger members start better. The miniature family is built the same way by
`build_member`: each size of `models.LADDER` from the same seed-0 initialisation rule, on the
same corpus (`pretrain.corpus`, flawed worked solutions), for the same steps and batches, with
one learning rate (`FAMILY_CONFIG`). The "instruct" variant continues each base model with a
second stage on a cleaner corpus (fewer slips), as instruct models are base models tuned on
curated data: it starts better and has less headroom.

Pretraining the family takes about 3.5 CPU-hours (some 2 hours on 2 cores; docs/miniature.md),
too long for a demo, so the result ships with the package under `weights/` in bfloat16 (the format models are
released in; every size is rounded the same way, and a rebuild rounds too, so a rebuild gives
the shipped files bit for bit). `weights/MANIFEST.json` records the recipe's hash and each
file's sha256. `member_path` uses the shipped weights when their recipe hash is the current one
and otherwise builds into the cache (`$RLSCALE_CACHE`, default ~/.cache/rlscale/ladder), so a
changed recipe never silently reuses stale weights. `rlscale pretrain` builds (or rebuilds) them.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path

import torch
from pydantic import BaseModel, ConfigDict, Field

from rlscale.config import read_yaml_mapping, validate_file
from rlscale.data import arithmetic
from rlscale.errors import ConfigError, DataError
from rlscale.files import atomic_write_text
from rlscale.models.ladder import build_model, get_spec
from rlscale.models.loading import load_model, save_model
from rlscale.models.params import count_params
from rlscale.models.scoring import sequence_probability
from rlscale.models.tokenizer import build_tokenizer
from rlscale.pretrain.corpus import pretraining_corpus
from rlscale.pretrain.supervised import PretrainConfig, pretrain

VARIANTS = ("base", "instruct")
SHIPPED = Path(__file__).parent / "weights"
MANIFEST = "MANIFEST.json"
RECORD = "pretrain.json"
STORAGE_DTYPE = torch.bfloat16


class FamilyConfig(BaseModel):
    """The family's recipe: the base stage, the instruct stage on top of it, the held-out check."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base: PretrainConfig = Field(default_factory=PretrainConfig)
    continued: list[PretrainConfig] = Field(default_factory=list, description=(
        "Further base stages, each continuing the one before (a staged, easy-first "
        "pretraining: tiers 7-8 are learned only after tiers 1-6; docs/miniature.md). Empty: "
        "the shipped one-stage recipe."))
    instruct: PretrainConfig = Field(
        default_factory=lambda: PretrainConfig(steps=1000, lr=1e-3, warmup_steps=20,
                                               flaw_rate=0.2, seed=7),
        description="Continued from base on a cleaner corpus (its own seed: new problems).")
    n_check: int = Field(512, ge=1, description="Held-out problems of the per-tier check.")
    check_seed: int = Field(1, description="Seed of the check's held-out problems.")

    def stage(self, variant: str) -> PretrainConfig:
        """The last stage of `variant`: the one a build of that member trains."""
        return self.stages(variant)[-1]

    def stages(self, variant: str) -> list[PretrainConfig]:
        """Every stage up to `variant`, in training order."""
        return [self.base, *self.continued] + ([self.instruct] if variant == "instruct" else [])

    def previous(self, variant: str) -> tuple[FamilyConfig, str] | None:
        """The recipe and variant a build of `variant` continues from (None: a fresh model)."""
        if variant == "instruct":
            return self, "base"
        if self.continued:
            return self.model_copy(update={"continued": self.continued[:-1]}), "base"
        return None

    def check_tiers(self) -> list[int] | None:
        """The tiers of the per-tier check: every tier a base stage trains on (None: default)."""
        named = [s.tiers for s in (self.base, *self.continued)]
        if all(t is None for t in named):
            return None
        return sorted(set().union(*(t or arithmetic.DEFAULT_TIERS for t in named)))

    def recipe_hash(self, name: str, variant: str) -> str:
        """What determines a member's weights: its shape, the stages up to `variant` (their config
        and what their corpus holds), the vocab."""
        stages = self.stages(variant)
        blob = json.dumps({"spec": asdict(get_spec(name)),
                           "stages": [s.model_dump(mode="json") for s in stages],
                           "corpus": [corpus_fingerprint(s) for s in stages],
                           "storage": str(STORAGE_DTYPE),
                           "vocab": build_tokenizer().get_vocab()}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


FAMILY_CONFIG = FamilyConfig()
FINGERPRINT_SOLUTIONS = 512


def load_recipe(path: str | Path) -> FamilyConfig:
    """A family recipe from a YAML file of `FamilyConfig`'s keys (what it leaves out is the shipped
    recipe's), e.g. configs/family-staged.yaml; errors name the file and the key."""
    return validate_file(FamilyConfig, read_yaml_mapping(path, "family recipe"), path)


def corpus_fingerprint(stage: PretrainConfig) -> str:
    """sha256 of the first solutions of a stage's corpus. The stage's config names its corpus
    but not the task's code: a change to the tiers, the slips or the problem generator changes
    these texts, and so the recipe hash, so shipped weights are never reused for another task."""
    pairs = pretraining_corpus(FINGERPRINT_SOLUTIONS, flaw_rate=stage.flaw_rate, seed=stage.seed,
                               tiers=stage.tiers)
    text = "\n".join(f"{problem.prompt_text()}{solution}" for problem, solution in pairs)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def default_root() -> Path:
    return Path(os.environ.get("RLSCALE_CACHE") or "~/.cache/rlscale/ladder").expanduser()


def member_name(name: str, variant: str) -> str:
    return f"{name}-{variant}"


def _check_variant(variant: str) -> None:
    if variant not in VARIANTS:
        raise ConfigError(f"key 'variant': must be one of {VARIANTS}, got {variant!r}")


def shipped_path(name: str, variant: str, config: FamilyConfig = FAMILY_CONFIG) -> Path | None:
    """The shipped weights of a member if they exist and were built by `config`'s recipe."""
    folder = SHIPPED / member_name(name, variant)
    record = folder / RECORD
    if not record.is_file():
        return None
    if json.loads(record.read_text()).get("recipe_hash") != config.recipe_hash(name, variant):
        return None
    return folder


def cached_path(name: str, variant: str, *, root: str | Path | None = None,
                config: FamilyConfig = FAMILY_CONFIG) -> Path | None:
    """The member already built into the cache by `config`'s recipe, if there is one."""
    root = Path(root).expanduser() if root is not None else default_root()
    final = root / f"{member_name(name, variant)}-{config.recipe_hash(name, variant)}"
    return final if (final / RECORD).is_file() else None


def member_path(name: str, variant: str = "base", *, root: str | Path | None = None,
                config: FamilyConfig = FAMILY_CONFIG, rebuild: bool = False,
                progress=None) -> Path:
    """Directory of a family member for `load_model`: the shipped weights when they match the
    recipe (unless `rebuild`), else the cache, built there on first use."""
    get_spec(name)
    _check_variant(variant)
    if not rebuild:
        shipped = shipped_path(name, variant, config)
        if shipped is not None:
            return shipped
    return build_member(name, variant, root=root, config=config, progress=progress)


def build_member(name: str, variant: str = "base", *, root: str | Path | None = None,
                 config: FamilyConfig = FAMILY_CONFIG, progress=None) -> Path:
    """Pretrain one member into `root` (cached: a finished member is returned as it is).

    Resumable: an interrupted build continues from its last state in `<root>/.work-...`. A
    member that continues another (the instruct variant, or a staged recipe's last base stage)
    first finds or builds the member before it, the shipped one when its recipe matches (a
    rebuild reproduces shipped weights bit for bit, so this only saves the hours).
    """
    _check_variant(variant)
    root = Path(root).expanduser() if root is not None else default_root()
    key = config.recipe_hash(name, variant)
    final = root / f"{member_name(name, variant)}-{key}"
    if cached_path(name, variant, root=root, config=config) is not None:
        return final
    previous = config.previous(variant)
    if previous is None:
        tokenizer = build_tokenizer()
        model = build_model(name, seed=0, tokenizer=tokenizer)
    else:  # continue the stored (bfloat16) member before it, shipped if its recipe matches
        before, before_variant = previous
        model, tokenizer = load_model(member_path(name, before_variant, root=root, config=before,
                                                  progress=progress))
    stage = config.stage(variant)
    corpus = [(p.prompt_text(), text) for p, text in pretraining_corpus(
        stage.steps * stage.batch_size, flaw_rate=stage.flaw_rate, seed=stage.seed,
        tiers=stage.tiers)]
    work = root / f".work-{final.name}"
    work.mkdir(parents=True, exist_ok=True)
    on_step = progress(f"{name} {variant}", stage.steps) if progress is not None else None
    result = pretrain(model, tokenizer, corpus, stage, work_dir=work, on_step=on_step)
    model = model.to(STORAGE_DTYPE).float()  # the stored weights are what every user loads
    check = check_member(model, tokenizer, config)
    count = count_params(model)
    record = {
        "name": name, "variant": variant, "recipe_hash": key, "steps": result.steps,
        "wall_time": round(result.wall_time, 1), "final_loss": round(result.final_loss, 5),
        "loss_per_100_steps": [round(v, 5) for v in result.losses],
        "check": check, "N_total": count.total, "N_nonembed": count.non_embedding,
        "torch_threads": torch.get_num_threads(), "torch_version": torch.__version__,
        "recipe": config.model_dump(mode="json"),
    }
    # Saved beside the final folder, then renamed: a kill never leaves a half-written member.
    staging = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=root))
    staging.chmod(0o755)  # mkdtemp's 0700 would hide a shared cache from its other users
    save_model(model.to(STORAGE_DTYPE), tokenizer, staging)
    (staging / RECORD).write_text(json.dumps(record, indent=1) + "\n")
    try:
        staging.rename(final)
    except OSError:  # another process finished the same member first: keep theirs
        shutil.rmtree(staging, ignore_errors=True)
    shutil.rmtree(work, ignore_errors=True)
    return final


def check_member(model, tokenizer, config: FamilyConfig = FAMILY_CONFIG) -> dict:
    """Exact pass@1 of the canonical solution at T = 0.7 on held-out problems, overall and per
    tier (teacher forcing: deterministic, no sampling noise)."""
    problems = arithmetic.arithmetic_problems(config.n_check, seed=config.check_seed,
                                              split="test", tiers=config.check_tiers())
    probs = []
    for start in range(0, len(problems), 256):
        batch = problems[start:start + 256]
        responses = [tokenizer(p.solution, add_special_tokens=False)["input_ids"]
                     + [tokenizer.eos_token_id] for p in batch]
        probs += sequence_probability(model, tokenizer, [p.prompt_text() for p in batch],
                                       responses, temperature=0.7).tolist()
    tiers: dict[int, list[float]] = {}
    for problem, q in zip(problems, probs, strict=True):
        tiers.setdefault(problem.metadata["tier"], []).append(q)
    return {"canonical_pass1": round(sum(probs) / len(probs), 4),
            "per_tier": {str(t): round(sum(v) / len(v), 4) for t, v in sorted(tiers.items())}}


# --------------------------------------------------------------------------- shipping
def ship_member(built: Path, *, target: Path = SHIPPED) -> Path:
    """Copy a built member into the package's weights folder and update the manifest."""
    record = json.loads((built / RECORD).read_text())
    folder = target / member_name(record["name"], record["variant"])
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(built, folder)
    write_manifest(target)
    return folder


def file_hashes(target: Path = SHIPPED) -> dict[str, str]:
    """sha256 of every shipped file, by path relative to the weights folder."""
    return {str(p.relative_to(target)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(target.rglob("*")) if p.is_file() and p.name != MANIFEST}


def write_manifest(target: Path = SHIPPED) -> Path:
    path = target / MANIFEST
    atomic_write_text(path, json.dumps({"files": file_hashes(target)}, indent=1) + "\n")
    return path


def verify_shipped(target: Path = SHIPPED) -> dict[str, str]:
    """Files whose sha256 differs from the manifest (or missing/extra), as {path: problem}."""
    manifest_path = target / MANIFEST
    if not manifest_path.is_file():
        raise DataError("no manifest", path=manifest_path)
    expected = json.loads(manifest_path.read_text())["files"]
    actual = file_hashes(target)
    problems = {p: "missing" for p in expected if p not in actual}
    problems |= {p: "not in the manifest" for p in actual if p not in expected}
    problems |= {p: "sha256 differs" for p in expected
                 if p in actual and actual[p] != expected[p]}
    return problems


def member_record(path: Path) -> dict:
    return json.loads((Path(path) / RECORD).read_text())


# --------------------------------------------------------------------------- the whole family
def build_family(names: list[str], variants: tuple[str, ...] = ("base",), *,
                 root: str | Path | None = None, config: FamilyConfig = FAMILY_CONFIG,
                 workers: int = 1, threads: int = 1, console=None) -> dict[tuple[str, str], Path]:
    """Build members into the cache, `workers` sizes at a time (each with `threads` torch threads;
    a size's variants in order, instruct after base), with one progress bar per member.
    Returns {(name, variant): path}."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    for name in names:
        get_spec(name)
    for variant in variants:
        _check_variant(variant)
    ctx = mp.get_context("spawn")
    bars = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("loss {task.fields[loss]:.4f}"), TimeElapsedColumn(),
                    console=console)
    out: dict[tuple[str, str], Path] = {}
    with ctx.Manager() as manager, bars, ProcessPoolExecutor(workers, mp_context=ctx) as pool:
        queue = manager.Queue()
        # Largest first: the longest build starts at once and the small ones fill the other workers.
        order = sorted(names, key=lambda n: -get_spec(n).non_embedding_params)
        futures = {pool.submit(_build_sizes, name, variants, str(root) if root else None, config,
                               threads, queue): name for name in order}
        tasks: dict[str, int] = {}
        while not all(f.done() for f in futures) or not queue.empty():
            try:
                label, step, total, loss = queue.get(timeout=0.5)
            except Exception:  # queue.Empty, under the Manager's proxy
                continue
            if label not in tasks:
                tasks[label] = bars.add_task(label, total=total, loss=loss)
            bars.update(tasks[label], completed=step, loss=loss)
        for future, name in futures.items():
            for variant, path in future.result().items():  # re-raises a worker's error
                out[(name, variant)] = Path(path)
    return out


def _build_sizes(name, variants, root, config, threads, queue) -> dict[str, str]:
    """Worker: build one size's variants, reporting progress every 10 steps."""
    from rlscale.threads import set_torch_threads

    set_torch_threads(threads)

    def progress(label, total):
        def on_step(step, loss):
            if step % 10 == 0 or step == total:
                queue.put((label, step, total, loss))
        return on_step

    return {variant: str(build_member(name, variant, root=root, config=config,
                                      progress=progress)) for variant in variants}
