"""Warm start: supervised training of a ladder size on the built-in task, up to a pass@1 band.

RL needs a policy that already succeeds sometimes (the paper starts from pretrained Qwen2.5). A
random miniature model never does, so each size is first trained with next-token loss on
prompt -> `arithmetic_solution` + eos (loss on the solution tokens only) until its held-out pass@1
enters the band, or a step cap is hit. Bigger models get there in fewer steps.

Training problems come from the easy tiers (1-3) only: the hard tiers (4-digit sums, 3-term
chains) are out of reach of these sizes within the step budget, and mixing them in slowed the
easy tiers' learning in our runs; the held-out check still spans all tiers, so RL has headroom
on the hard half. The learning rate shrinks as 1/width (`WarmstartConfig.lr`); with it the
larger sizes reach the band in fewer steps.

Band check: pass@1 on `n_eval` held-out problems (split="test", all tiers) sampled at T=0.7 with a
fixed seed, as the trainer evaluates at step 0, every `eval_every` steps; training stops at the
first check at or above the band's low end (`in_band` records whether it also stayed below the
high end).

The "instruct" variant continues from the base checkpoint with a second supervised stage of
`instruct_steps` steps on the same easy tiers and learning rate, with no band: training past the
band gives a stronger starting point than base, as Qwen2.5-Instruct is against Qwen2.5 base.
(A stage of 100 steps on tiers 1-2 alone barely moved held-out pass@1 in our runs.)

Results are cached under `root / <size>-<variant>-s<seed>-<config hash>/` with the model, its
tokenizer and `warmstart.json` (steps, wall time, pass@1, the config), written atomically.
"""

import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from pydantic import BaseModel, ConfigDict, Field

from rlscale.data import arithmetic_problems, arithmetic_solution
from rlscale.errors import ConfigError
from rlscale.models.ladder import build_model, get_spec
from rlscale.models.loading import load_model, save_model
from rlscale.models.params import count_params
from rlscale.models.tokenizer import build_tokenizer

VARIANTS = ("base", "instruct")
BASE_TIERS = (1, 2, 3)
LR_REFERENCE_WIDTH = 64


class WarmstartConfig(BaseModel):
    """Supervised warm-start settings (one set for every size, so steps-to-band compare sizes)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    batch_size: int = Field(32, ge=1, description="Problems per optimizer step.")
    lr: float = Field(3e-3, gt=0, description=(
        "AdamW peak learning rate at hidden size 64, scaled by 64 / hidden for wider models "
        "(Adam's best rate falls ~1/width); linear warm-up, then constant."))
    warmup_steps: int = Field(10, ge=0, description="Linear learning-rate warm-up steps.")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    max_steps: int = Field(800, ge=1, description="Step cap of the base stage.")
    eval_every: int = Field(25, ge=1, description="Steps between held-out pass@1 checks.")
    n_eval: int = Field(128, ge=1, description="Held-out problems per check.")
    eval_temperature: float = Field(0.7, gt=0, description="Sampling temperature of the check.")
    max_new_tokens: int = Field(48, ge=1, description="Response cap of the check (solutions <= 40).")
    instruct_steps: int = Field(300, ge=1, description="Extra steps of the instruct stage.")


@dataclass(frozen=True)
class WarmstartResult:
    name: str
    variant: str
    path: Path
    steps: int
    wall_time: float  # seconds of this stage's training and checks (as recorded when trained)
    pass1: float
    in_band: bool
    cached: bool  # True when read from the cache rather than trained now


def default_root() -> Path:
    return Path(os.environ.get("RLSCALE_CACHE") or "~/.cache/rlscale/ladder").expanduser()


def cache_key(name: str, variant: str, seed: int, band: tuple[float, float],
              config: WarmstartConfig) -> str:
    spec = get_spec(name)
    # The base stage does not depend on the instruct stage's settings: keep its key stable.
    settings = config.model_dump(exclude={"instruct_steps"} if variant == "base" else None)
    blob = json.dumps(
        {"spec": asdict(spec), "band": list(band), "config": settings,
         "vocab": build_tokenizer().get_vocab()},
        sort_keys=True,
    )
    return f"{spec.name}-{variant}-s{seed}-{hashlib.sha256(blob.encode()).hexdigest()[:10]}"


def warmstart(
    name: str,
    *,
    variant: str = "base",
    seed: int = 0,
    root: str | Path | None = None,
    band: tuple[float, float] = (0.15, 0.40),
    config: WarmstartConfig | None = None,
    progress=True,
) -> WarmstartResult:
    """The warm-started checkpoint of ladder size `name`, trained now or read from the cache.

    progress: True shows a rich progress bar; a `rich.progress.Progress` adds its task to it.
    """
    if variant not in VARIANTS:
        raise ConfigError(f"key 'variant': must be one of {VARIANTS}, got {variant!r}")
    low, high = band
    if not 0 <= low < high <= 1:
        raise ConfigError(f"key 'band': need 0 <= low < high <= 1, got {band}")
    config = config or WarmstartConfig()
    root = Path(root).expanduser() if root is not None else default_root()
    path = root / cache_key(name, variant, seed, band, config)
    record_path = path / "warmstart.json"
    if record_path.is_file():
        record = json.loads(record_path.read_text())
        return _result(record, path, cached=True)

    if variant == "base":
        tokenizer = build_tokenizer()
        model = build_model(name, seed=seed, tokenizer=tokenizer)
        tiers, max_steps, stop_band = BASE_TIERS, config.max_steps, band
    else:
        base = warmstart(name, variant="base", seed=seed, root=root, band=band, config=config,
                         progress=progress)
        model, tokenizer = load_model(base.path)
        tiers, max_steps, stop_band = BASE_TIERS, config.instruct_steps, None
    steps, wall_time, pass1 = _train(model, tokenizer, config, seed=seed, tiers=tiers,
                                     max_steps=max_steps, band=stop_band,
                                     label=f"{name} {variant}", progress=progress)
    count = count_params(model)
    record = {
        "name": name, "variant": variant, "seed": seed, "band": list(band),
        "steps": steps, "wall_time": round(wall_time, 3), "pass1": pass1,
        "in_band": low <= pass1 <= high,
        "N_total": count.total, "N_nonembed": count.non_embedding,
        "config": config.model_dump(), "torch_threads": torch.get_num_threads(),
    }
    # Write beside the final directory, then rename: a crash never leaves a half checkpoint.
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}-", dir=root))
    save_model(model, tokenizer, staging)
    (staging / "warmstart.json").write_text(json.dumps(record, indent=2) + "\n")
    try:
        staging.rename(path)
    except OSError:  # another process finished the same warm start first: keep theirs
        shutil.rmtree(staging, ignore_errors=True)
        return _result(json.loads(record_path.read_text()), path, cached=True)
    return _result(record, path, cached=False)


def ensure_ladder_model(name: str, root: str | Path | None = None, *, seed: int = 0,
                        variant: str = "base", progress: bool = True) -> Path:
    """Directory of the warm-started `name` (default band and config), for `load_model`; trains
    it on first use (with a progress bar unless `progress=False`, e.g. inside another live
    display)."""
    return warmstart(name, variant=variant, seed=seed, root=root, progress=progress).path


def _result(record: dict, path: Path, *, cached: bool) -> WarmstartResult:
    return WarmstartResult(
        name=record["name"], variant=record["variant"], path=path, steps=record["steps"],
        wall_time=record["wall_time"], pass1=record["pass1"], in_band=record["in_band"],
        cached=cached,
    )


def _batch(tokenizer, problems):
    """Right-padded prompt+solution+eos ids; labels only on solution and eos."""
    rows, labels = [], []
    for problem in problems:
        prompt = tokenizer(problem.prompt_text())["input_ids"]
        target = tokenizer(arithmetic_solution(problem), add_special_tokens=False)["input_ids"]
        target = target + [tokenizer.eos_token_id]
        rows.append(prompt + target)
        labels.append([-100] * len(prompt) + target)
    width = max(map(len, rows))
    ids = torch.full((len(rows), width), tokenizer.pad_token_id, dtype=torch.long)
    label_ids = torch.full((len(rows), width), -100, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (row, label) in enumerate(zip(rows, labels, strict=True)):
        ids[i, : len(row)] = torch.tensor(row)
        label_ids[i, : len(row)] = torch.tensor(label)
        mask[i, : len(row)] = 1
    return ids, mask, label_ids


def _train(model, tokenizer, config: WarmstartConfig, *, seed, tiers, max_steps, band, label,
           progress):
    """Supervised steps until pass@1 enters `band` (None: run all `max_steps`)."""
    from rlscale.reward import Verifier  # rl/ and reward/ build on models/; import late
    from rlscale.rl.evaluate import evaluate

    held_out = arithmetic_problems(config.n_eval, seed=seed + 1, split="test")
    train = arithmetic_problems(config.batch_size * max_steps, seed=seed, tiers=tiers,
                                split="train")
    lr = config.lr * LR_REFERENCE_WIDTH / model.config.hidden_size
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min(1.0, (step + 1) / (config.warmup_steps + 1))
    )

    # Integer answers: the in-process exact match decides every case, no math-verify workers.
    verifier = Verifier(use_math_verify=False)

    def check() -> float:
        return evaluate(model, tokenizer, held_out, verifier=verifier,
                        temperature=config.eval_temperature, max_new_tokens=config.max_new_tokens,
                        batch_size=config.n_eval, seed=seed).pass1

    start = time.perf_counter()
    pass1 = float("nan")
    with _progress(progress) as bar:
        task = bar.add_task(f"warm start {label}", total=max_steps, pass1=pass1)
        model.train()
        torch.manual_seed(seed)
        step = 0
        for step in range(1, max_steps + 1):
            ids, mask, labels = _batch(
                tokenizer, train[(step - 1) * config.batch_size : step * config.batch_size]
            )
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            if step % config.eval_every == 0 or step == max_steps:
                pass1 = check()
                model.train()
                if band is not None and pass1 >= band[0]:
                    bar.update(task, completed=step, total=step, pass1=pass1)
                    break
            bar.update(task, advance=1, pass1=pass1, loss=loss.item())
    model.eval()
    return step, time.perf_counter() - start, pass1


def warmstart_progress(**options):
    """A rich Progress showing steps and the last pass@1 check; pass it as `progress=`."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("pass@1 {task.fields[pass1]:.3f}"), TimeElapsedColumn(), **options,
    )


def _progress(progress):
    from contextlib import nullcontext

    from rich.progress import Progress

    if isinstance(progress, Progress):
        return nullcontext(progress)
    return warmstart_progress(disable=not progress)
