"""One GRPO step at the real Qwen2.5 shapes (0.5B, 1.5B, 3B, 7B), rlscale's trainer vs TRL's.

The models are built from the published architecture numbers (the config.json of each Qwen2.5
base model) with random weights: nothing is downloaded. Each backend runs one warm-up step and
one timed step of the paper's recipe: GRPO, G rollouts per prompt at temperature 1.0, group-
normalised advantages, k3 KL 0.001 to a frozen reference model, ratio clip 0.2, token-level loss,
`--updates` AdamW updates a step (the paper: 512 prompts in mini-batches of 128, 4 updates), lr
1e-6 constant, grad clip 1.0. Reported per (size, backend): step time, tokens/s (prompt + response
tokens of the step over its time), peak memory, MFU (the step's FLOPs by rlscale.models.flops,
as each backend runs it, over the device's peak), and native/TRL (steps/s over steps/s).

Random-weight models cannot solve problems, so prompts are random token strings and the reward is
a trivial deterministic function of the response text (1 if its length in characters is even):
enough to give non-zero advantages, meaningless otherwise. Responses run to the length cap (a
random model almost never samples EOS), so the lengths are the ones asked for.

    # CPU smoke test (the defaults on CPU: 0.5B with its vocabulary cut to 4096 tokens,
    # 2 prompts x G=2, 16 + 16 tokens, 2 updates, float32; --layers N cuts the depth too)
    python bench/real_shapes.py
    # GPU: all four sizes, bf16 autocast over float32 master weights, descending settings on OOM
    python bench/real_shapes.py --json-out real_shapes.json

On a GPU, unless --prompts/--group-size/--prompt-len/--response-len are given, each size tries
the settings of GPU_SETTINGS from the largest down and keeps the first at which both backends fit
(the paper's 512 x 8 at 2048 + 4096 tokens does not fit one device); the table says what was used.
--vocab and --layers change the published shapes: smoke settings, never real figures.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import random
import shutil
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("WANDB_DISABLED", "true")

import torch  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from tokenizers import Tokenizer, models, pre_tokenizers  # noqa: E402
from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM  # noqa: E402

from rlscale.data.problem import Problem  # noqa: E402
from rlscale.models import count_params, load_model, save_model  # noqa: E402
from rlscale.models.flops import ModelShape, step_flops  # noqa: E402
from rlscale.rl.config import load_config  # noqa: E402
from rlscale.rl.trainer import GRPOTrainer  # noqa: E402
from rlscale.threads import set_torch_threads  # noqa: E402


@dataclass(frozen=True)
class QwenShape:
    """The architecture numbers of a Qwen2.5 base model's config.json."""

    hidden: int
    layers: int
    heads: int
    kv_heads: int
    intermediate: int
    tied: bool
    vocab: int = 151936


QWEN25 = {
    "0.5B": QwenShape(896, 24, 14, 2, 4864, tied=True),
    "1.5B": QwenShape(1536, 28, 12, 2, 8960, tied=True),
    "3B": QwenShape(2048, 36, 16, 2, 11008, tied=True),
    "7B": QwenShape(3584, 28, 28, 4, 18944, tied=False),
}

# (prompts, G, prompt tokens, response tokens), largest first: tried in turn on a GPU until both
# backends fit. Micro-batches are --micro sequences (G by default), so memory grows mostly with
# the lengths and the model; the batch sets the decode batch and the step's length.
GPU_SETTINGS = [(32, 8, 1024, 2048), (32, 8, 512, 1024), (16, 8, 512, 1024),
                (16, 8, 256, 512), (8, 8, 256, 512), (4, 8, 128, 256), (4, 4, 64, 128)]

# Dense bf16 tensor-core peaks (FLOP/s), matched in order against torch.cuda.get_device_name().
GPU_PEAK_BF16 = [("H100 PCIe", 756e12), ("H100", 989e12), ("H200", 989e12), ("H800", 989e12),
                 ("A100", 312e12)]

RECIPE = dict(lr=1e-6, weight_decay=0.1, grad_clip=1.0, kl_coef=0.001, clip=0.2)
PAD, EOS = "<pad>", "<eos>"


# ----------------------------------------------------------------------------- setup


def qwen_config(shape: QwenShape, vocab: int | None, layers: int | None) -> Qwen2Config:
    return Qwen2Config(
        vocab_size=vocab or shape.vocab, hidden_size=shape.hidden,
        intermediate_size=shape.intermediate, num_hidden_layers=layers or shape.layers,
        num_attention_heads=shape.heads, num_key_value_heads=shape.kv_heads,
        head_dim=shape.hidden // shape.heads, max_position_embeddings=32768,
        rope_theta=1e6, rms_norm_eps=1e-6, tie_word_embeddings=shape.tied,
        pad_token_id=0, eos_token_id=1, bos_token_id=None)


def word_tokenizer(vocab: int) -> PreTrainedTokenizerFast:
    """One token per whitespace-separated word w2 .. w{vocab-1}, plus <pad> (0) and <eos> (1):
    a prompt of k words is exactly k tokens, and every id the model samples decodes."""
    words = {PAD: 0, EOS: 1, **{f"w{i}": i for i in range(2, vocab)}}
    core = Tokenizer(models.WordLevel(vocab=words, unk_token=None))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    core.add_special_tokens([PAD, EOS])
    return PreTrainedTokenizerFast(tokenizer_object=core, pad_token=PAD, eos_token=EOS,
                                   padding_side="left", model_max_length=1 << 20)


def save_random_model(config: Qwen2Config, tokenizer, path: Path, device: str) -> Path:
    """A randomly initialised Qwen2ForCausalLM (built on `device`: fast), saved in bfloat16 so
    that both backends load the same weights from disk (TRL builds its reference from there)."""
    torch.manual_seed(0)
    with torch.device(device):
        model = Qwen2ForCausalLM(config)
    save_model(model.to(torch.bfloat16), tokenizer, path)
    del model
    free_memory()
    return path


def random_problems(n: int, prompt_len: int, vocab: int) -> list[Problem]:
    rng = random.Random(0)
    return [Problem(id=str(i), prompt=" ".join(f"w{rng.randrange(2, vocab)}"
                                               for _ in range(prompt_len)), answer="")
            for i in range(n)]


def toy_reward(text: str) -> float:
    """Deterministic and meaningless: 1 if the response's length in characters is even."""
    return float(len(text) % 2 == 0)


class ToyVerifier:
    """Stands in for rlscale.reward.Verifier: the same verify_batch, scored by toy_reward."""

    def verify_batch(self, texts, golds):
        return [SimpleNamespace(correct=bool(toy_reward(t)), timed_out=False) for t in texts]


# ----------------------------------------------------------------------------- measuring


def free_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def reset_peak_memory(device: str) -> None:
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        return
    # Linux: reset the process's peak RSS (VmHWM), so that each backend gets its own peak.
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def peak_memory(device: str) -> float:
    """Bytes: torch.cuda.max_memory_allocated on CUDA; the peak RSS on CPU (VmHWM since the last
    reset on Linux, else getrusage's max RSS of the whole process)."""
    if device == "cuda":
        return float(torch.cuda.max_memory_allocated())
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return float(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def device_peak(device: str, dtype: str) -> tuple[float | None, str]:
    """(peak FLOP/s, where it comes from): the bf16 table on CUDA, a measured fp32/bf16 matmul on
    CPU (what this CPU's BLAS reaches, not a datasheet figure)."""
    if device == "cuda":
        name = torch.cuda.get_device_name()
        if dtype != "bfloat16":
            return None, f"{name}: no float32 peak in the table"
        for key, flops in GPU_PEAK_BF16:
            if key in name:
                return flops, f"{name} dense bf16 {flops / 1e12:.0f} TFLOP/s"
        return None, f"{name}: not in the peak table (--peak-tflops)"
    n, dt = 1024, getattr(torch, dtype)
    a, b = torch.randn(n, n, dtype=dt), torch.randn(n, n, dtype=dt)
    a @ b
    reps, start = 10, time.perf_counter()
    for _ in range(reps):
        a @ b
    flops = 2 * n**3 * reps / (time.perf_counter() - start)
    return flops, f"CPU measured {n}x{n} {dtype} matmul, {flops / 1e9:.0f} GFLOP/s"


@dataclass(frozen=True)
class Setting:
    prompts: int
    group_size: int
    prompt_len: int
    response_len: int
    updates: int
    micro: int | None  # sequences per forward/backward (None: the whole mini-batch)

    @property
    def mini(self) -> int:
        return self.prompts // self.updates

    def label(self) -> str:
        micro = f", micro {self.micro}" if self.micro else ""
        return (f"{self.prompts}x{self.group_size}, {self.prompt_len}+{self.response_len} tok, "
                f"{self.updates} upd{micro}")


# ----------------------------------------------------------------------------- the backends


def run_native(model_dir: Path, s: Setting, problems, args) -> dict:
    model, _ = load_model(model_dir, dtype=getattr(torch, args.weights), device=args.device)
    tokenizer = word_tokenizer(args.vocab_used)  # AutoTokenizer would read it as Qwen2's BPE
    cfg = load_config(None, [
        f"model={model_dir}", f"device={args.device}", f"dtype={args.dtype}",
        f"prompts_per_step={s.prompts}", f"group_size={s.group_size}",
        f"mini_batch_prompts={s.mini}", f"max_prompt_tokens={s.prompt_len}",
        f"max_response_tokens={s.response_len}", "temperature=1.0", "loss_agg=token-mean",
        *([f"micro_batch_sequences={s.micro}"] if s.micro else []),
        f"lr={RECIPE['lr']}", f"weight_decay={RECIPE['weight_decay']}",
        f"grad_clip={RECIPE['grad_clip']}", f"kl_coef={RECIPE['kl_coef']}",
        f"clip_low={RECIPE['clip']}", f"clip_high={RECIPE['clip']}"])
    trainer = GRPOTrainer(cfg, model, tokenizer)  # reference: a frozen copy of the policy
    verifier = ToyVerifier()
    trainer.step(0, problems[: s.prompts], verifier)  # warm-up
    synchronize(args.device)
    start = time.perf_counter()
    figures = trainer.step(1, problems[s.prompts: 2 * s.prompts], verifier)
    synchronize(args.device)
    return {"time": time.perf_counter() - start, "tokens": figures["tokens"],
            "flops": figures["flops_step"], "updates": figures["updates"],
            "response_len": figures["response_len"], "time_generation": figures["time_generation"]}


def run_trl(model_dir: Path, s: Setting, problems, args, out: Path) -> dict:
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, TrainerCallback
    from transformers.trainer_callback import PrinterCallback
    from trl import GRPOConfig
    from trl import GRPOTrainer as TRLTrainer

    tokenizer = word_tokenizer(args.vocab_used)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=getattr(torch, args.weights))
    G = s.group_size
    micro = s.micro or s.mini * G
    dataset = Dataset.from_dict({"prompt": [p.prompt_text() for p in problems[: 2 * s.prompts]]})

    def reward(completions, **_):
        return [toy_reward(c) for c in completions]

    # One TRL generation cycle = one rlscale step: P x G rollouts, then `updates` optimizer
    # steps of a mini-batch each, accumulated over micro-batches of `micro` sequences.
    cfg = GRPOConfig(
        output_dir=str(out), use_cpu=args.device == "cpu", bf16=args.dtype == "bfloat16",
        fp16=False, report_to="none", per_device_train_batch_size=micro,
        gradient_accumulation_steps=s.mini * G // micro, generation_batch_size=s.prompts * G,
        num_generations=G, max_completion_length=s.response_len, temperature=1.0, top_p=1.0,
        learning_rate=RECIPE["lr"], lr_scheduler_type="constant", warmup_steps=0,
        weight_decay=RECIPE["weight_decay"], max_grad_norm=RECIPE["grad_clip"],
        beta=RECIPE["kl_coef"], epsilon=RECIPE["clip"], epsilon_high=RECIPE["clip"],
        # dapo: the token mean over each optimizer step's mini-batch, however it is accumulated
        # (bnpo would average per micro-batch), i.e. the paper's token-mean.
        loss_type="dapo", scale_rewards="group", num_iterations=1, shuffle_dataset=False,
        max_steps=2 * s.updates, save_strategy="no", logging_steps=10_000, disable_tqdm=True,
        seed=0, dataloader_num_workers=0)

    marks: list[float] = []
    tokens_seen: list[float] = []

    class Clock(TrainerCallback):
        def on_step_end(self, args_, state, control, **kwargs):
            synchronize(args.device)
            marks.append(time.perf_counter())
            tokens_seen.append(state.num_input_tokens_seen)

    trainer = TRLTrainer(model=model, reward_funcs=reward, args=cfg, train_dataset=dataset,
                         processing_class=tokenizer, callbacks=[Clock()])
    trainer.remove_callback(PrinterCallback)  # its end-of-training summary is noise here
    trainer.train()
    # The timed cycle: from the warm-up cycle's last update to the timed cycle's last update.
    a, b = s.updates - 1, 2 * s.updates - 1
    tokens = tokens_seen[b] - tokens_seen[a]
    n_seq = s.prompts * G
    response_len = max(1, round(tokens / n_seq) - s.prompt_len)
    # TRL recomputes the old policy's log-probs (a generation spans several updates).
    flops = step_flops(ModelShape.from_model(model), [s.prompt_len] * n_seq,
                       [response_len] * n_seq, group_size=G, old_policy_pass=True,
                       reference_pass=True).total
    del trainer, model  # the Accelerator holds the models too: free them before the next run
    return {"time": marks[b] - marks[a], "tokens": tokens, "flops": flops,
            "updates": s.updates, "response_len": response_len}


def measure(backend: str, model_dir: Path, s: Setting, args, tmp: Path) -> dict:
    """One backend at one setting: its figures, or {'oom': True} when it ran out of memory."""
    free_memory()
    reset_peak_memory(args.device)
    problems = random_problems(2 * s.prompts, s.prompt_len, args.vocab_used)
    oom = False
    try:
        if backend == "native":
            result = run_native(model_dir, s, problems, args)
        else:
            result = run_trl(model_dir, s, problems, args, tmp / "trl-out")
    except torch.OutOfMemoryError:
        oom = True
    if oom:  # outside the except block, so that the failed step's tensors can be freed
        free_memory()
        return {"oom": True}
    result["peak_memory"] = peak_memory(args.device)
    free_memory()
    return result


# ----------------------------------------------------------------------------- main


def settings_to_try(args) -> list[Setting]:
    fixed = [args.prompts, args.group_size, args.prompt_len, args.response_len]
    if args.device == "cpu":
        rows = [(args.prompts or 2, args.group_size or 2, args.prompt_len or 16,
                 args.response_len or 16)]
    elif any(v is not None for v in fixed):
        rows = [tuple(v if v is not None else d for v, d in zip(fixed, GPU_SETTINGS[-3],
                                                                  strict=True))]
    else:
        rows = GPU_SETTINGS
    out = []
    for p, g, pl, rl in rows:
        updates = args.updates or min(4, p)
        if p % updates:
            raise SystemExit(f"--updates {updates} does not divide {p} prompts")
        micro = args.micro or (g if args.device == "cuda" else None)
        out.append(Setting(p, g, pl, rl, updates, micro))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    cuda = torch.cuda.is_available()
    parser.add_argument("--sizes", default=None,
                        help="comma-separated, of " + ", ".join(QWEN25) +
                             " (default: all on a GPU, 0.5B on CPU)")
    parser.add_argument("--backends", default="native,trl")
    parser.add_argument("--prompts", type=int, help="prompts per step (CPU default 2)")
    parser.add_argument("--group-size", type=int, help="rollouts per prompt G (CPU default 2)")
    parser.add_argument("--prompt-len", type=int, help="prompt tokens (CPU default 16)")
    parser.add_argument("--response-len", type=int,
                        help="response tokens (the cap; random weights reach it) (CPU default 16)")
    parser.add_argument("--updates", type=int,
                        help="optimizer updates a step (default min(4, prompts), the paper's 4)")
    parser.add_argument("--micro", type=int,
                        help="sequences per forward/backward pass: a multiple of G dividing the "
                             "mini-batch (memory only; default G on a GPU, the whole mini-batch "
                             "on CPU)")
    parser.add_argument("--dtype", choices=("bfloat16", "float32"),
                        default="bfloat16" if cuda else "float32",
                        help="compute precision (bf16 autocast on a GPU, float32 on CPU)")
    parser.add_argument("--weights", choices=("float32", "bfloat16"), default="float32",
                        help="parameter dtype: float32 master weights (the recipe); bfloat16 "
                             "halves the memory (7B fits one 141 GB GPU) but an lr 1e-6 update "
                             "is below its resolution: timing only")
    parser.add_argument("--vocab", type=int,
                        help="SMOKE ONLY: cut the vocabulary (CPU default 4096; GPU: the "
                             "published 151936)")
    parser.add_argument("--layers", type=int, help="SMOKE ONLY: fewer layers than published")
    parser.add_argument("--peak-tflops", type=float, help="the device's peak, for MFU")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args()
    args.device = "cuda" if cuda else "cpu"
    set_torch_threads(args.threads)
    warnings.filterwarnings("ignore")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    console = Console(width=None if sys.stdout.isatty() else 120)

    sizes = [s.strip().upper() for s in (args.sizes or ("0.5B,1.5B,3B,7B" if cuda else "0.5B"))
             .split(",")]
    unknown = [s for s in sizes if s not in QWEN25]
    if unknown:
        raise SystemExit(f"unknown sizes {unknown}; known: {', '.join(QWEN25)}")
    backends = [b.strip().lower() for b in args.backends.split(",")]
    if "trl" in backends:
        try:
            import trl  # noqa: F401
        except ImportError:
            console.print("TRL is not installed: running the native backend only")
            backends = [b for b in backends if b != "trl"]
    if args.vocab is None and not cuda:
        args.vocab = 4096
    smoke = [f"vocab {args.vocab}"] * (args.vocab is not None) + \
        [f"{args.layers} layers"] * (args.layers is not None)
    peak, peak_note = (args.peak_tflops * 1e12, "--peak-tflops") if args.peak_tflops else \
        device_peak(args.device, args.dtype)
    console.print(f"device {args.device}, compute {args.dtype}, weights {args.weights}; MFU vs "
                  f"{peak_note}; random weights, toy reward (even response length)")
    if smoke:
        console.print(f"[bold]SMOKE SETTING[/bold] ({', '.join(smoke)}): not the published "
                      "shapes, not real figures")

    rows = []
    with tempfile.TemporaryDirectory() as tmp_name:
        for size in sizes:
            rows += bench_size(size, backends, args, peak, smoke, console, Path(tmp_name))

    print_table(console, rows)
    if args.json_out:
        args.json_out.write_text(json.dumps({"peak_flops": peak, "peak_source": peak_note,
                                             "rows": rows}, indent=2))
        console.print(f"wrote {args.json_out}")


def bench_size(size: str, backends: list[str], args, peak: float | None, smoke: list[str],
               console: Console, tmp: Path) -> list[dict]:
    """Every backend on one model size, at the first setting (largest first) where all fit."""
    config = qwen_config(QWEN25[size], args.vocab, args.layers)
    args.vocab_used = config.vocab_size
    n_params = count_params(_meta_model(config)).total
    settings = settings_to_try(args)
    if not fits(n_params, args):
        console.print(f"{size}: does not fit ({state_bytes(args)} bytes a parameter for weights, "
                      "gradients, AdamW and the reference); try --weights bfloat16")
        setting, results = settings[-1], {b: {"oom": True} for b in backends}
    else:
        tokenizer = word_tokenizer(config.vocab_size)
        model_dir = save_random_model(config, tokenizer, tmp / size, args.device)
        for setting in settings:
            console.print(f"{size}: trying {setting.label()}")
            results = {b: measure(b, model_dir, setting, args, tmp) for b in backends}
            if not any(r.get("oom") for r in results.values()):
                break
        for path in (model_dir, tmp / "trl-out"):
            shutil.rmtree(path, ignore_errors=True)
    rows = []
    for backend, r in results.items():
        row = {"size": size, "backend": backend, "params": n_params,
               "setting": setting.__dict__, "device": args.device, "dtype": args.dtype,
               "weights": args.weights, "smoke": smoke, **r}
        if not r.get("oom"):
            row |= {"tokens_per_s": r["tokens"] / r["time"],
                    "flops_per_s": r["flops"] / r["time"],
                    "mfu": r["flops"] / r["time"] / peak if peak else None}
        rows.append(row)
    return rows


def state_bytes(args) -> int:
    """Bytes a parameter: weights, gradients and AdamW's two moments (all in the weights' dtype)
    plus the frozen reference copy."""
    return 5 * (4 if args.weights == "float32" else 2)


def fits(n_params: int, args) -> bool:
    """Whether the training state alone fits the GPU (CPU: not checked)."""
    if args.device != "cuda":
        return True
    return n_params * state_bytes(args) < torch.cuda.get_device_properties(0).total_memory


def _meta_model(config: Qwen2Config):
    with torch.device("meta"):
        return Qwen2ForCausalLM(config)


def print_table(console: Console, rows: list[dict]) -> None:
    table = Table(title="one GRPO step of the paper's recipe at Qwen2.5 shapes (random weights)")
    for col in ("size", "params", "backend", "setting", "step s", "tokens/s", "peak GiB", "MFU"):
        table.add_column(col, justify="left" if col in ("size", "backend", "setting") else "right")
    for r in rows:
        setting = Setting(**r["setting"]).label()
        if r.get("oom"):
            table.add_row(r["size"], f"{r['params'] / 1e9:.2f}B", r["backend"], setting,
                          "OOM", "", "", "")
            continue
        mfu = f"{100 * r['mfu']:.1f}%" if r["mfu"] is not None else "n/a"
        table.add_row(r["size"], f"{r['params'] / 1e9:.2f}B", r["backend"], setting,
                      f"{r['time']:.2f}", f"{r['tokens_per_s']:.0f}",
                      f"{r['peak_memory'] / 2**30:.1f}", mfu)
    console.print(table)
    by = {(r["size"], r["backend"]): r for r in rows if not r.get("oom")}
    for size in dict.fromkeys(r["size"] for r in rows):
        if (size, "native") in by and (size, "trl") in by:
            ratio = by[(size, "trl")]["time"] / by[(size, "native")]["time"]
            console.print(f"{size}: native / TRL steps/s = {ratio:.2f}")


if __name__ == "__main__":
    main()
