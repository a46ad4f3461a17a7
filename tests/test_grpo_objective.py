"""The GRPO objective against hand-computed cases."""

import math

import pytest
import torch

from rlscale.models.scoring import logprobs_from_logits
from rlscale.rl.grpo import (
    aggregate,
    clipped_policy_loss,
    group_advantages,
    grpo_loss,
    low_var_kl,
)


def test_group_advantages_normalise_within_each_group():
    # group 1: mean 0.25, unbiased std sqrt((0.75^2 + 3 * 0.25^2) / 3) = 0.5
    rewards = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0])
    adv = group_advantages(rewards, 4)  # eps 1e-6
    assert torch.allclose(adv[:4], torch.tensor([1.5, -0.5, -0.5, -0.5]))
    assert torch.equal(adv[4:], torch.zeros(4))  # all equal: no signal, and no division by 0


def test_group_advantages_without_std_and_with_eps():
    rewards = torch.tensor([1.0, 0.0, 0.0, 0.0])
    assert torch.allclose(group_advantages(rewards, 4, std_normalize=False),
                          torch.tensor([0.75, -0.25, -0.25, -0.25]))
    assert torch.allclose(group_advantages(rewards, 4, eps=0.5),
                          torch.tensor([0.75, -0.25, -0.25, -0.25]))  # / (0.5 + 0.5)
    with pytest.raises(ValueError):
        group_advantages(torch.zeros(6), 4)


def test_clipped_policy_loss_hand_cases():
    ratios = torch.tensor([[1.5, 1.5, 0.5, 0.5]])
    logp = torch.log(ratios)
    old = torch.zeros_like(logp)
    # One sequence per token so that each token gets its own advantage.
    adv = torch.tensor([1.0, -1.0, 1.0, -1.0])
    loss, ratio, clipped = clipped_policy_loss(logp.T, old.T, adv, 0.2, 0.2)
    assert torch.allclose(ratio.squeeze(), ratios.squeeze())
    # A>0, r=1.5: max(-1.5, -1.2) = -1.2 (clipped); A<0, r=1.5: max(1.5, 1.2) = 1.5;
    # A>0, r=0.5: max(-0.5, -0.8) = -0.5; A<0, r=0.5: max(0.5, 0.8) = 0.8 (clipped)
    assert torch.allclose(loss.squeeze(), torch.tensor([-1.2, 1.5, -0.5, 0.8]))
    assert clipped.squeeze().tolist() == [True, False, False, True]


def test_clip_low_and_high_are_separate():
    logp = torch.log(torch.tensor([[1.5], [0.5]]))
    loss, _, _ = clipped_policy_loss(logp, torch.zeros_like(logp), torch.tensor([1.0, -1.0]),
                                     0.1, 0.3)
    assert torch.allclose(loss.squeeze(), torch.tensor([-1.3, 0.9]))


def test_clipped_tokens_carry_no_gradient():
    logp = torch.log(torch.tensor([[1.5, 1.0]])).requires_grad_(True)
    loss, _, _ = clipped_policy_loss(logp, torch.zeros(1, 2), torch.tensor([1.0]), 0.2, 0.2)
    loss.sum().backward()
    assert logp.grad[0, 0] == 0.0  # clipped
    assert logp.grad[0, 1] == pytest.approx(-1.0)  # d(-A r)/dlogp = -A r = -1


def test_low_var_kl_matches_k3_and_clamps():
    logp = torch.tensor([0.0, math.log(0.5), -25.0])
    ref = torch.tensor([math.log(2.0), math.log(0.5), 0.0])
    kl = low_var_kl(logp, ref, clamp=10.0)
    assert kl[0].item() == pytest.approx(2.0 - math.log(2.0) - 1.0)  # exp(d) - d - 1
    assert kl[1].item() == 0.0  # same distribution
    assert kl[2].item() == 10.0  # exp(20) - 21 clamped
    assert (low_var_kl(torch.randn(100), torch.randn(100)) >= 0).all()


def test_aggregate_token_mean_vs_seq_mean():
    values = torch.tensor([[1.0, 2.0, 3.0], [4.0, 9.0, 9.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    assert aggregate(values, mask, "token-mean").item() == pytest.approx(10 / 4)
    assert aggregate(values, mask, "seq-mean").item() == pytest.approx((2 + 4) / 2)
    with pytest.raises(ValueError):
        aggregate(values, mask, "sum")


@pytest.mark.parametrize("mode", ["token-mean", "seq-mean"])
def test_micro_batches_accumulate_to_the_mini_batch_gradient(mode):
    torch.manual_seed(0)
    base = torch.randn(4, 5)
    old = base + 0.1 * torch.randn(4, 5)
    ref = base + 0.1 * torch.randn(4, 5)
    adv = torch.tensor([1.0, -1.0, 0.5, -0.5])
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0], [1, 1, 0, 0, 0.0]])
    kw = dict(clip_low=0.2, clip_high=0.2, kl_coef=0.1, loss_agg=mode)

    whole = base.clone().requires_grad_(True)
    grpo_loss(whole, old, adv, mask, ref_logp=ref, **kw)[0].backward()

    parts = base.clone().requires_grad_(True)
    for rows in (slice(0, 2), slice(2, 4)):
        loss, _ = grpo_loss(parts[rows], old[rows], adv[rows], mask[rows], ref_logp=ref[rows],
                            total_tokens=float(mask.sum()), total_seqs=4.0, **kw)
        loss.backward()
    assert torch.allclose(whole.grad, parts.grad, atol=1e-6)


def test_grpo_loss_combines_terms_and_reports_stats():
    logp = torch.log(torch.tensor([[1.5, 1.0], [1.0, 1.0]]))
    old = torch.zeros(2, 2)
    ref = torch.tensor([[0.0, math.log(2.0)], [0.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    adv = torch.tensor([1.0, -1.0])
    entropy = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    loss, stats = grpo_loss(logp, old, adv, mask, ref_logp=ref, entropy=entropy,
                            kl_coef=0.5, entropy_coef=0.1)
    policy = (-1.2 - 1.0 + 1.0) / 3
    kl_tokens = [low_var_kl(logp[0, 0], ref[0, 0]).item(), 2 - math.log(2) - 1, 0.0]
    kl = sum(kl_tokens) / 3
    assert loss.item() == pytest.approx(policy + 0.5 * kl - 0.1 * (1 + 2 + 3) / 3, rel=1e-5)
    assert stats.tokens == 3
    assert stats.clip_frac == pytest.approx(1 / 3)
    assert stats.kl == pytest.approx(kl, rel=1e-5)
    assert stats.ratio_max == pytest.approx(1.5)
    assert stats.ratio_min == pytest.approx(1.0)


def test_logprobs_from_logits_and_entropy():
    logits = torch.log(torch.tensor([[[0.5, 0.25, 0.25]]]))
    logp, ent = logprobs_from_logits(logits, torch.tensor([[1]]), with_entropy=True)
    assert logp.item() == pytest.approx(math.log(0.25))
    assert ent.item() == pytest.approx(-(0.5 * math.log(0.5) + 0.5 * math.log(0.25)))
    hot, _ = logprobs_from_logits(logits, torch.tensor([[0]]), temperature=0.5)
    assert hot.item() == pytest.approx(math.log(0.25 / (0.25 + 2 * 0.0625)))  # p^2 renormalised
