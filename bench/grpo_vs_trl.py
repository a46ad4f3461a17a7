"""rlscale's GRPO training step vs TRL's GRPOTrainer, side by side on CPU.

Same model (a miniature ladder size, same weights), same prompts, G, lengths and optimizer
settings: P prompts a step, G rollouts each, mini-batches of M prompts (P/M AdamW updates a step),
temperature 1.0, constant lr, weight decay, grad clip, KL coef and clip ratio. One rlscale step
equals one TRL generation cycle of P/M optimizer steps (steps_per_generation = P/M, a whole
mini-batch per forward/backward). The first step of each is a warm-up and is not timed.

    python bench/grpo_vs_trl.py [--sizes mini-130k,mini-862k] [--steps 3] [--threads 1]

Prints steps/s of each and the ratio, tokens/s and achieved GFLOP/s of the training step (real
FLOPs by rlscale.models.flops: generation, reference/old-policy passes, forward and backward),
and as its last line `ratio_vs_trl: <min ratio over sizes>`.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("WANDB_DISABLED", "true")

import torch  # noqa: E402

from rlscale.data.arithmetic import arithmetic_problems  # noqa: E402
from rlscale.models import build_model, build_tokenizer, count_params, save_model  # noqa: E402
from rlscale.models.flops import ModelShape, step_flops  # noqa: E402
from rlscale.pretrain.family import member_path  # noqa: E402
from rlscale.reward import Verifier  # noqa: E402
from rlscale.rl.config import load_config  # noqa: E402
from rlscale.rl.trainer import GRPOTrainer  # noqa: E402
from rlscale.threads import set_torch_threads  # noqa: E402

PROMPTS, G, MINI, MAX_NEW = 32, 8, 8, 48  # the miniature recipe (specs/miniature.yaml)
SETTINGS = dict(lr=5e-5, weight_decay=0.1, grad_clip=1.0, kl_coef=0.001, clip=0.2)


def bench_rlscale(model_dir: Path, problems, steps: int) -> dict:
    from rlscale.models import load_model

    model, tokenizer = load_model(model_dir)
    cfg = load_config(None, [
        f"model={model_dir}", f"prompts_per_step={PROMPTS}", f"group_size={G}",
        f"mini_batch_prompts={MINI}", f"max_response_tokens={MAX_NEW}",
        f"lr={SETTINGS['lr']}", f"weight_decay={SETTINGS['weight_decay']}",
        f"grad_clip={SETTINGS['grad_clip']}", f"kl_coef={SETTINGS['kl_coef']}",
        f"clip_low={SETTINGS['clip']}", f"clip_high={SETTINGS['clip']}"])
    trainer = GRPOTrainer(cfg, model, tokenizer)
    times, tokens, flops = [], [], []
    with Verifier() as verifier:
        trainer.step(0, problems[:PROMPTS], verifier)  # warm-up
        for step in range(1, steps + 1):
            batch = problems[step * PROMPTS: (step + 1) * PROMPTS]
            start = time.perf_counter()
            figures = trainer.step(step, batch, verifier)
            times.append(time.perf_counter() - start)
            tokens.append(figures["tokens"])
            flops.append(figures["flops_step"])
    return _rates(times, tokens, flops)


def _rates(times: list[float], tokens: list[float], flops: list[float]) -> dict:
    """Rates of the fastest timed step: the machine is shared, and best-of-N is the figure
    least disturbed by other processes (applied to both trainers alike)."""
    best = min(range(len(times)), key=times.__getitem__)
    return {"steps_per_s": 1 / times[best], "tokens_per_s": tokens[best] / times[best],
            "gflops_per_s": flops[best] / times[best] / 1e9}


def bench_trl(model_dir: Path, problems, steps: int, out: Path) -> dict:
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig
    from trl import GRPOTrainer as TRLTrainer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tokenizer.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    updates_per_step = PROMPTS // MINI
    n = (steps + 1) * PROMPTS
    dataset = Dataset.from_dict({"prompt": [p.prompt_text() for p in problems[:n]],
                                 "answer": [p.answer for p in problems[:n]]})
    verifier = Verifier().__enter__()

    def reward(completions, answer, **_):
        return [float(v.correct) for v in verifier.verify_batch(completions, answer)]

    args = GRPOConfig(
        output_dir=str(out), use_cpu=True, bf16=False, fp16=False, report_to="none",
        per_device_train_batch_size=MINI * G, gradient_accumulation_steps=1,
        steps_per_generation=updates_per_step, num_generations=G,
        max_completion_length=MAX_NEW, temperature=1.0, top_p=1.0,
        learning_rate=SETTINGS["lr"], lr_scheduler_type="constant", warmup_steps=0,
        weight_decay=SETTINGS["weight_decay"], max_grad_norm=SETTINGS["grad_clip"],
        beta=SETTINGS["kl_coef"], epsilon=SETTINGS["clip"], epsilon_high=SETTINGS["clip"],
        loss_type="bnpo", scale_rewards="group", num_iterations=1, shuffle_dataset=False,
        max_steps=(steps + 1) * updates_per_step, save_strategy="no", logging_steps=10_000,
        disable_tqdm=True, seed=0, dataloader_num_workers=0)

    marks: list[float] = []

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            marks.append(time.perf_counter())

    trainer = TRLTrainer(model=model, reward_funcs=reward, args=args, train_dataset=dataset,
                         processing_class=tokenizer, callbacks=[Clock()])
    tokens_seen: list[float] = []

    class Tokens(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            tokens_seen.append(state.num_input_tokens_seen)

    trainer.add_callback(Tokens())
    try:
        trainer.train()
    finally:
        verifier.__exit__(None, None, None)
    # One cycle = one generation + its P/M updates, ending at the last update's step end.
    ends = [updates_per_step * k - 1 for k in range(1, steps + 2)]  # the first is the warm-up
    times = [marks[b] - marks[a] for a, b in zip(ends, ends[1:], strict=False)]
    tokens = [tokens_seen[b] - tokens_seen[a] for a, b in zip(ends, ends[1:], strict=False)]
    # FLOPs at TRL's token counts with mean lengths (its per-sequence lengths are not exposed):
    # generation, old-policy and reference passes, forward and backward, as TRL runs them.
    shape = ModelShape.from_model(model)
    prompt_len = round(sum(len(tokenizer(p.prompt_text())["input_ids"])
                           for p in problems[:PROMPTS]) / PROMPTS)
    flops = []
    for t in tokens:
        response_len = max(1, round(t / (PROMPTS * G)) - prompt_len)
        flops.append(step_flops(shape, [prompt_len] * PROMPTS * G, [response_len] * PROMPTS * G,
                                group_size=G, old_policy_pass=True, reference_pass=True).total)
    return _rates(times, tokens, flops)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="mini-130k,mini-862k")
    parser.add_argument("--steps", type=int, default=4,
                        help="timed steps after one warm-up (the fastest counts)")
    parser.add_argument("--init", choices=("pretrained", "random"), default="pretrained",
                        help="pretrained: the shipped miniature family, which answers briefly and "
                             "stops at EOS as RL's starting policies do; random: freshly "
                             "initialised weights (responses run to the cap)")
    parser.add_argument("--threads", type=int, default=int(os.environ.get("RLSCALE_THREADS", 1)))
    args = parser.parse_args()
    set_torch_threads(args.threads)
    warnings.filterwarnings("ignore")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()

    problems = arithmetic_problems((args.steps + 1) * PROMPTS, seed=0, split="train")
    tokenizer = build_tokenizer()
    print(f"{args.init} models; GRPO step: {PROMPTS} prompts x G={G}, mini-batch {MINI} prompts "
          f"({PROMPTS // MINI} updates), <= {MAX_NEW} new tokens, {args.threads} thread(s), "
          f"{args.steps} timed steps")
    print(f"{'size':>10} {'N':>9} {'engine':>8} {'steps/s':>8} {'tokens/s':>9} {'GFLOP/s':>8}")
    ratios = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes.split(","):
            if args.init == "pretrained":
                model_dir = member_path(size, "base")
            else:
                model_dir = save_model(build_model(size, seed=0, tokenizer=tokenizer), tokenizer,
                                       Path(tmp) / size)
            n_params = count_params(build_model(size, seed=0, tokenizer=tokenizer)).total
            # rlscale is timed before and after TRL, so that a change in the machine's load
            # during the run does not favour either side; the best step of each counts.
            before = bench_rlscale(model_dir, problems, args.steps)
            theirs = bench_trl(model_dir, problems, args.steps, Path(tmp) / f"trl-{size}")
            set_torch_threads(args.threads)
            after = bench_rlscale(model_dir, problems, args.steps)
            ours = max(before, after, key=lambda r: r["steps_per_s"])
            for name, r in (("rlscale", ours), ("trl", theirs)):
                print(f"{size:>10} {n_params:>9,} {name:>8} {r['steps_per_s']:>8.3f} "
                      f"{r['tokens_per_s']:>9.0f} {r['gflops_per_s']:>8.2f}")
            ratio = ours["steps_per_s"] / theirs["steps_per_s"]
            ratios.append(ratio)
            print(f"{size:>10} ratio rlscale/trl steps/s: {ratio:.2f}")
    print(f"ratio_vs_trl: {min(ratios):.2f}")


if __name__ == "__main__":
    main()
