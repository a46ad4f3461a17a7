"""The training config: every knob of a GRPO run, documented where it is declared.

Defaults are the paper's recipe for real models (arXiv 2509.25300, section 2): 512 prompts a step,
G = 8, mini-batches of 128 prompts, lr 1e-6, KL 0.001 (k3, clamped), clip 0.2, token-mean.
The miniature configs in `configs/` set their own batch, lengths and learning rate.

A config is a YAML file plus `key=value` overrides (`data.reuse_tau=4`, `lr=3e-3`); values are
parsed as YAML, so `eval_sets={gsm8k: data/gsm8k.parquet}` works too.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from rlscale.config import first_error, parse_override, read_yaml_mapping
from rlscale.errors import ConfigError
from rlscale.runs import names

BUILTIN_TASK = "arithmetic"
_DEVICE = re.compile(r"cpu|mps|cuda(:\d+)?")


class DataConfig(BaseModel):
    """Where the problems come from, how the hold-out set is made and in what order prompts flow."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    source: str = Field(
        default=BUILTIN_TASK,
        description="Training problems: 'arithmetic' (the built-in procedural task) or a file "
                    "load_problems reads (.parquet in the VeRL/guru schema, .jsonl, a local HF "
                    "datasets directory).")
    n_problems: int | None = Field(
        default=None, ge=1,
        description="How many problems to generate (built-in task; default 4096) or to read "
                    "(files; default all).")
    tiers: list[int] | None = Field(
        default=None,
        description="Built-in task only: the difficulty tiers to draw problems from (1 easiest "
                    "... 8 hardest; default 1-6, the task the shipped family was pretrained on), for "
                    "training and a split-off hold-out alike.")
    holdout: str | None = Field(
        default=None,
        description="A file with the held-out problems. None: split a stratified hold-out set "
                    "off the training problems (holdout_easy + holdout_hard), as the paper did.")
    holdout_easy: int = Field(
        default=250, ge=0, description="Easy problems (pass rate >= 0.3) in a split-off hold-out.")
    holdout_hard: int = Field(
        default=250, ge=0, description="Hard problems in a split-off hold-out set.")
    eval_limit: int | None = Field(
        default=None, ge=1,
        description="Evaluate on at most this many problems of each eval set (None: all).")
    eval_sets: dict[str, str] = Field(
        default_factory=dict,
        description="Extra eval sets, name -> file (e.g. {gsm8k: .../gsm8k.parquet}); the "
                    "hold-out set is always evaluated as 'holdout'.")
    order: Literal["curriculum", "shuffle"] = Field(
        default="curriculum",
        description="Prompt order: 'curriculum' (easy -> hard by pass rate, the paper) or "
                    "'shuffle'.")
    seed: int = Field(
        default=0,
        description="Seed of the data: the built-in problems, the hold-out split and the reuse "
                    "subset and shuffles. Separate from the run seed so that runs of several "
                    "seeds share one data set and hold-out, as in the paper.")
    reuse_tau: int = Field(
        default=1, ge=1,
        description="Data reuse: train on a 1/tau subset of the prompts repeated tau times "
                    "(total prompts unchanged). 1 = every prompt once.")


class TrainConfig(BaseModel):
    """One GRPO run. Field order follows a run's life: model, data, rollouts, loss, eval, logging."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    # --- model
    model: str = Field(
        description="A miniature family size (e.g. 'mini-308k'; the shipped pretrained weights, "
                    "or built and cached on first use) or a local Hugging Face model directory.")
    family: str = Field(
        default="",
        description="Model family label recorded in the run (e.g. 'qwen2.5', 'mini'); "
                    "'' = derived from the model.")
    variant: Literal["base", "instruct"] = Field(
        default="base",
        description="Base or instruct: for family sizes picks the pretrained variant, for local "
                    "models it is only recorded.")
    nominal_n: float | None = Field(
        default=None, gt=0,
        description="The model's nominal size (e.g. 0.5e9 for Qwen2.5-0.5B), used for "
                    "C = 6 N T when n_for_compute='nominal'.")
    n_for_compute: Literal["nominal", "counted", "counted_non_embedding"] = Field(
        default="counted",
        description="N in the paper's compute C = 6 N T: 'nominal' (nominal_n, as the paper's "
                    "code), 'counted' (all parameters) or 'counted_non_embedding'.")
    dtype: Literal["float32", "bfloat16", "float16"] = Field(
        default="float32",
        description="Compute precision. float32: everything in float32. bfloat16: every forward "
                    "pass (rollouts, scoring, updates) runs under torch.autocast in bfloat16, "
                    "while the parameters and AdamW's state stay float32 master copies (an "
                    "update of lr 1e-6 is below bfloat16's resolution, so bf16 parameters would "
                    "not move) and checkpoints hold the float32 weights. float16 is refused: it "
                    "needs loss scaling, which rlscale does not do.")
    device: str = Field(default="cpu", description="torch device, e.g. 'cpu' or 'cuda'.")

    # --- data and run length
    data: DataConfig = Field(default_factory=DataConfig, description="Problems and their order.")
    steps: int | None = Field(
        default=None, ge=1,
        description="Training steps. None: total_prompts / prompts_per_step, or one pass over "
                    "the training problems if total_prompts is also None.")
    total_prompts: int | None = Field(
        default=None, ge=1,
        description="Total prompts consumed (D at the end); must be a multiple of "
                    "prompts_per_step. Ignored when steps is set.")
    prompts_per_step: int = Field(default=512, ge=1, description="Prompts per training step.")
    group_size: int = Field(default=8, description="Rollouts per prompt G (>= 2).")
    mini_batch_prompts: int = Field(
        default=128, ge=1,
        description="Prompts per optimizer update; prompts_per_step / mini_batch_prompts updates "
                    "a step. Must divide prompts_per_step.")
    micro_batch_sequences: int | None = Field(
        default=None, ge=1,
        description="Sequences per forward/backward pass inside a mini-batch (gradient "
                    "accumulation; memory only, the update is the same). None: the whole "
                    "mini-batch at once.")
    length_buckets: int = Field(
        default=4, ge=1,
        description="Scoring and update passes split their rows (whole groups, sorted by "
                    "length) into up to this many micro-batches of >= 32 sequences, each padded "
                    "only to its own longest sequence (speed only; the update is the same).")
    epochs: int = Field(default=1, ge=1, description="Passes over each step's batch.")
    recompute_old_logprobs: bool | None = Field(
        default=None,
        description="Recompute the old-policy log-probs with a full forward pass before the "
                    "updates (VeRL does). False: use the sampling log-probs, which are the same "
                    "policy's in float32 (on-policy) and save a forward pass. None: True in "
                    "bfloat16 (a token's log-prob there depends on its batch's shape), else False.")

    # --- sampling
    temperature: float = Field(default=1.0, gt=0, description="Rollout sampling temperature.")
    top_p: float = Field(default=1.0, gt=0, le=1, description="Rollout nucleus sampling top-p.")
    max_prompt_tokens: int = Field(
        default=2048, ge=1, description="Prompts are left-truncated to this many tokens.")
    max_response_tokens: int = Field(
        default=4096, ge=1, description="Response length cap (generation stops here or at EOS).")

    rollout_batch_size: int | None = Field(
        default=None, ge=1,
        description="Sequences decoded together by the rollout engine (memory only; samples "
                    "depend on it through the shared generator). None: all at once.")

    # --- objective and optimizer
    lr: float = Field(default=1e-6, gt=0, description="AdamW learning rate, constant, no warm-up.")
    weight_decay: float = Field(default=0.1, ge=0, description="AdamW weight decay.")
    adam_betas: tuple[float, float] = Field(default=(0.9, 0.999), description="AdamW betas.")
    grad_clip: float = Field(
        default=1.0, gt=0, description="Clip the global gradient norm of each update to this.")
    clip_low: float = Field(
        default=0.2, ge=0, description="Ratio clip below: ratio >= 1 - clip_low.")
    clip_high: float = Field(
        default=0.2, ge=0, description="Ratio clip above: ratio <= 1 + clip_high.")
    kl_coef: float = Field(
        default=0.001, ge=0,
        description="Weight of the k3 ('low_var_kl') KL to the frozen initial policy in the loss. "
                    "0 skips the reference model entirely.")
    kl_clamp: float = Field(default=10.0, gt=0, description="Per-token KL clamp (+- this).")
    loss_agg: Literal["token-mean", "seq-mean"] = Field(
        default="token-mean",
        description="'token-mean': mean over all response tokens of the mini-batch (the paper); "
                    "'seq-mean': mean over sequences of each sequence's token mean.")
    std_normalize: bool = Field(
        default=True, description="Divide group-centred rewards by the group's std (GRPO).")
    adv_eps: float = Field(
        default=1e-6, gt=0, description="Added to the group std before dividing.")
    entropy_coef: float = Field(
        default=0.0, ge=0, description="Entropy bonus weight (0 = logged only, as the paper).")

    # --- rewards
    reward_timeout: float = Field(
        default=5.0, gt=0, description="Seconds per answer check; a timeout scores 0 and is counted.")
    reward_workers: int = Field(
        default=1, ge=1, description="Verifier worker processes for math-verify.")

    # --- evaluation
    eval_every: int = Field(
        default=1, ge=0,
        description="Evaluate every k steps (and at step 0 and the end); 0 = only at 0 and end.")
    eval_temperature: float = Field(default=0.7, gt=0, description="Eval sampling temperature.")
    eval_samples: int = Field(default=1, ge=1, description="Samples per eval problem.")
    eval_greedy: bool = Field(
        default=False, description="Greedy decoding for evaluation (ignores eval_temperature).")
    eval_batch_size: int = Field(
        default=64, ge=1, description="Eval prompts generated together (memory only).")
    eval_estimator: Literal["sampled", "canonical"] = Field(
        default="sampled",
        description="'sampled': pass@1 = mean correctness of the samples (the paper). "
                    "'canonical': for problems with a canonical solution (the built-in task), "
                    "its exact probability by teacher forcing plus a sampled correction for "
                    "answers written otherwise: unbiased for the same pass@1, far less noisy "
                    "(rl/evaluate.py).")
    eval_noise_repeats: int = Field(
        default=0, ge=0,
        description="Re-evaluate the step-0 policy this many more times with other sampling "
                    "seeds; the std of L over all of them is recorded as the eval noise floor "
                    "(`noise_std` of the step-0 eval record). 0 = not measured.")

    # --- engine
    backend: Literal["native", "trl"] = Field(
        default="native",
        description="Who runs the GRPO steps: 'native' (rlscale's trainer) or 'trl' (TRL's "
                    "GRPOTrainer with this recipe mapped onto GRPOConfig, rlscale's schedule, "
                    "verifier, evals and run records; multi-GPU via accelerate launch; needs "
                    "pip install 'rlscale[trl]'; docs/training.md, 'TRL backend').")
    use_vllm: bool = Field(
        default=False,
        description="backend=trl only: sample rollouts with vLLM (TRL's colocated mode); needs "
                    "vLLM installed.")

    # --- run bookkeeping
    seed: int = Field(default=0, description="Seed for data order, sampling and init.")
    threads: int | None = Field(
        default=None, ge=1,
        description="torch CPU threads (None: RLSCALE_THREADS or all cores). Not part of the "
                    "config hash.")
    checkpoint_every: int = Field(
        default=0, ge=0,
        description="Save a resumable checkpoint every k steps (0 = only at the end).")
    keep_checkpoints: int = Field(
        default=1, ge=1, description="How many most recent checkpoints to keep.")
    out: str = Field(default="runs", description="Run root; the run lands in out/experiment/run_id.")
    experiment: str = Field(default="default", description="Experiment name (a folder under out).")
    run_id: str = Field(
        default="", description="Run name (a folder under the experiment); '' = model_s<seed>.")
    family_root: str | None = Field(
        default=None,
        description="Cache of family members built here (None: $RLSCALE_CACHE or "
                    "~/.cache/rlscale/ladder); shipped weights are used when they match.")
    family_recipe: dict[str, Any] | None = Field(
        default=None,
        description="For a family size: the recipe its member is pretrained by, the keys of a "
                    "family recipe file (`rlscale pretrain --recipe`, e.g. {base: {seed: 100}} "
                    "for a second pretraining draw); built and cached on first use. None: the "
                    "shipped recipe.")

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        if self.group_size < 2:
            raise ValueError("key 'group_size': G must be >= 2 (advantages need a group)")
        if self.prompts_per_step % self.mini_batch_prompts:
            raise ValueError(
                f"key 'mini_batch_prompts': {self.mini_batch_prompts} does not divide "
                f"prompts_per_step={self.prompts_per_step}")
        if self.steps is None and self.total_prompts is not None and (
                self.total_prompts % self.prompts_per_step):
            raise ValueError(
                f"key 'total_prompts': {self.total_prompts} is not a multiple of "
                f"prompts_per_step={self.prompts_per_step}")
        if self.n_for_compute == "nominal" and self.nominal_n is None:
            raise ValueError("key 'nominal_n': n_for_compute='nominal' needs the model's nominal size")
        if self.data.tiers is not None and self.data.source != BUILTIN_TASK:
            raise ValueError("key 'data.tiers': only the built-in task has tiers")
        if self.data.tiers is not None:
            from rlscale.data.arithmetic import tiers_problem

            problem = tiers_problem(self.data.tiers)
            if problem is not None:
                raise ValueError(f"key 'data.tiers': {problem}")
        if not all(0.0 <= b < 1.0 for b in self.adam_betas):
            raise ValueError(f"key 'adam_betas': each must be in [0, 1), got {list(self.adam_betas)}")
        if not _DEVICE.fullmatch(self.device):
            raise ValueError(f"key 'device': {self.device!r} is not cpu, cuda, cuda:N or mps")
        for key in ("experiment", "run_id"):
            value = getattr(self, key)
            if (value or key == "experiment") and not names.is_safe_name(value):
                raise ValueError(f"key '{key}': {value!r} {names.RULE}")
        if self.dtype == "float16":
            raise ValueError("key 'dtype': float16 needs loss scaling, which rlscale does not do; "
                             "use bfloat16 (same speed on GPUs that have it) or float32")
        if self.recompute_old_logprobs is None:
            self.recompute_old_logprobs = self.dtype != "float32"
        if self.use_vllm and self.backend != "trl":
            raise ValueError("key 'use_vllm': vLLM rollouts need backend=trl")
        if self.family_recipe is not None:
            self._check_family_recipe()
        if self.eval_estimator == "canonical" and self.eval_greedy:
            raise ValueError("key 'eval_estimator': 'canonical' scores sampling at "
                             "eval_temperature; it cannot be combined with eval_greedy")
        return self

    def _check_family_recipe(self) -> None:
        from rlscale.models.ladder import LADDER  # torch: only when a recipe is named

        if self.model not in LADDER:
            raise ValueError(f"key 'family_recipe': applies to a family size, not {self.model!r}")
        try:
            self.member_recipe()
        except ValidationError as e:
            key, message = first_error(e)
            raise ValueError(f"key 'family_recipe.{key}': {message}") from None

    def member_recipe(self):
        """The recipe (pretrain.family.FamilyConfig) a family size's member is pretrained by."""
        from rlscale.pretrain.family import FAMILY_CONFIG, FamilyConfig

        return FAMILY_CONFIG if self.family_recipe is None else \
            FamilyConfig.model_validate(self.family_recipe)

    @property
    def run_name(self) -> str:
        """run_id, or <model folder name>_s<seed> with anything unsafe in a folder name replaced."""
        return self.run_id or re.sub(r"[^A-Za-z0-9._+=-]", "-", f"{Path(self.model).name}_s{self.seed}"
                                     ).lstrip(".-") or f"run_s{self.seed}"

    def run_dir(self) -> Path:
        return Path(self.out) / self.experiment / self.run_name

    def n_steps(self, n_train_problems: int) -> int:
        """Steps of the run, given how many training problems the data source provided."""
        if self.steps is not None:
            return self.steps
        if self.total_prompts is not None:
            return self.total_prompts // self.prompts_per_step
        return max(1, n_train_problems // self.prompts_per_step)  # one pass, whole steps only

    def hashed_fields(self) -> dict[str, Any]:
        """The fields that define the run's results (a resumed run must match them all)."""
        fields = self.model_dump(mode="json")
        for key in _NOT_HASHED:
            fields.pop(key, None)
        for key, default in _HASHED_UNLESS_DEFAULT.items():
            if fields.get(key) == default:  # runs from before the field keep their hash
                fields.pop(key)
        return fields

    def config_hash(self) -> str:
        text = json.dumps(self.hashed_fields(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


# Settings that change how a run is executed or where it is written, never its records.
_NOT_HASHED = ("threads", "checkpoint_every", "keep_checkpoints", "out", "family_root")
# Later fields: part of the hash only when set away from their default.
_HASHED_UNLESS_DEFAULT = {"backend": "native", "use_vllm": False, "family_recipe": None}



def load_config(path: str | Path | None, overrides: list[str] | None = None) -> TrainConfig:
    """Read a YAML config and apply `key=value` overrides (dotted keys reach into sections).

    Errors name the file and the key: unknown keys, impossible values, malformed overrides.
    """
    where = str(path) if path is not None else "overrides"
    raw: dict[str, Any] = read_yaml_mapping(path, "config file") if path is not None else {}
    for item in overrides or []:
        _set_dotted(raw, *parse_override(item))
    return config_from_dict(raw, where=where)


def config_from_dict(raw: dict[str, Any], *, where: str = "config") -> TrainConfig:
    """Validate a mapping into a TrainConfig, turning pydantic errors into ConfigError(key)."""
    try:
        return TrainConfig.model_validate(raw)
    except ValidationError as e:
        messages = []
        for err in e.errors():
            key = ".".join(str(p) for p in err["loc"])
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "unknown key"
            messages.append(f"key '{key}': {msg}" if key else msg)
        raise ConfigError(f"{where}: " + "; ".join(messages)) from None


def _set_dotted(raw: dict[str, Any], key: str, value: Any) -> None:
    node = raw
    *parents, last = key.split(".")
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"override '{key}': '{part}' is not a section")
        node = child
    node[last] = value
