"""Entropic advantages: hand-derived values, the adaptive β, invariants and the degenerate groups."""

from __future__ import annotations

import math

import numpy as np
import pytest

from kerneldisc.learn import entropic_advantages, kl_from_uniform, mean_baseline_advantages
from kerneldisc.learn.entropic import BETA_CAP_NORMALISED


def _kl_by_hand(rewards, beta: float) -> float:
    """KL(softmax(βr) ‖ uniform) written out directly, independent of the library's version."""
    r = np.asarray(rewards, dtype=float)
    w = np.exp(beta * (r - r.max()))
    q = w / w.sum()
    q = q[q > 0]
    return float(np.sum(q * np.log(q * r.size)))


def test_fixed_beta_matches_hand_derived_leave_one_out_values():
    # β = ln 2 on rewards 0, 1, 2 gives e = 1/4, 1/2, 1, so
    # A_0 = (1/4)/((1/2 + 1)/2) − 1 = −2/3, A_1 = (1/2)/((1/4 + 1)/2) − 1 = −1/5,
    # A_2 = 1/((1/4 + 1/2)/2) − 1 = 5/3.
    advantages, beta = entropic_advantages([0.0, 1.0, 2.0], beta=math.log(2))
    assert beta == pytest.approx(math.log(2))
    np.testing.assert_allclose(advantages, [-2 / 3, -1 / 5, 5 / 3], rtol=1e-12)


def test_adaptive_beta_puts_kl_at_ln2_within_relative_precision():
    groups = [
        [3.0, 1.0, 2.0],
        [0.0, 0.5, 1.0, 2.0, 2.0, 0.1, 0.3, 1.5],
        list(range(64)),
        [1.0, 0.0, 0.0, 0.0],
    ]
    for rewards in groups:
        _, beta = entropic_advantages(rewards)
        assert _kl_by_hand(rewards, beta) == pytest.approx(math.log(2), rel=1e-5)
        # The root is bracketed to a relative 1e-6: a little to either side crosses ln 2.
        assert _kl_by_hand(rewards, beta * (1 - 1e-5)) < math.log(2) < _kl_by_hand(rewards, beta * (1 + 1e-5))


def test_kl_helper_matches_direct_formula_and_grows_with_beta():
    rewards = [0.2, 1.7, 0.9, 1.7, 0.0]
    betas = [0.0, 0.1, 0.5, 1.0, 3.0, 10.0, 100.0]
    kls = [kl_from_uniform(rewards, b) for b in betas]
    assert kls == pytest.approx([_kl_by_hand(rewards, b) for b in betas], abs=1e-12)
    assert kls[0] == 0.0
    assert all(a <= b for a, b in zip(kls, kls[1:], strict=False))
    # Two of five tied at the top: the limit is ln 5 − ln 2.
    assert kl_from_uniform(rewards, 1e4) == pytest.approx(math.log(5 / 2), rel=1e-9)


def test_advantages_are_invariant_to_reward_scale_and_offset():
    rewards = np.array([0.3, 1.2, 0.0, 2.5, 1.1, 0.7])
    base, beta = entropic_advantages(rewards)
    shifted, beta_shifted = entropic_advantages(3.0 * rewards + 7.0)
    np.testing.assert_allclose(shifted, base, rtol=1e-9, atol=1e-12)
    assert beta_shifted == pytest.approx(beta / 3.0, rel=1e-9)


def test_returned_beta_reproduces_the_adaptive_advantages():
    rewards = [4.0, 1.0, 2.5, 0.5, 3.0]
    adaptive, beta = entropic_advantages(rewards)
    fixed, used = entropic_advantages(rewards, beta=beta)
    assert used == beta
    np.testing.assert_allclose(fixed, adaptive, rtol=1e-12)


def test_advantages_follow_the_order_of_the_rewards():
    rng = np.random.default_rng(7)
    rewards = np.round(rng.exponential(1.0, size=32), 1)  # rounding makes some ties
    advantages, _ = entropic_advantages(rewards)
    for i in range(rewards.size):
        for j in range(rewards.size):
            if rewards[i] > rewards[j]:
                assert advantages[i] > advantages[j]
            elif rewards[i] == rewards[j]:
                assert advantages[i] == pytest.approx(advantages[j], rel=1e-12)


def test_single_reward_and_equal_rewards_give_zero_advantages():
    for rewards in ([2.0], [1.5, 1.5, 1.5, 1.5], [0.0, 0.0]):
        advantages, beta = entropic_advantages(rewards)
        assert advantages.tolist() == [0.0] * len(rewards)
        assert beta == 0.0


def test_half_the_group_tied_at_the_maximum_uses_the_finite_cap():
    rewards = [2.0, 2.0, 1.0, 1.0]  # ln 4 − ln 2 = ln 2 is only reached as β → ∞
    advantages, beta = entropic_advantages(rewards)
    assert beta == BETA_CAP_NORMALISED / 1.0  # spread is 1
    eps = math.exp(-BETA_CAP_NORMALISED)
    winner = 1 / ((1 + 2 * eps) / 3) - 1
    loser = eps / ((2 + eps) / 3) - 1
    np.testing.assert_allclose(advantages, [winner, winner, loser, loser], rtol=1e-12)
    assert kl_from_uniform(rewards, beta) == pytest.approx(math.log(2), rel=5e-3)


def test_lone_winner_of_a_pair_gets_a_bounded_advantage():
    advantages, beta = entropic_advantages([1.0, 0.25])
    assert beta == pytest.approx(BETA_CAP_NORMALISED / 0.75)
    cap = BETA_CAP_NORMALISED
    np.testing.assert_allclose(advantages, [math.expm1(cap), math.expm1(-cap)], rtol=1e-12)
    assert np.all(np.isfinite(advantages)) and advantages.max() < 1e4


def test_most_of_the_group_tied_at_the_maximum_stays_finite_and_ordered():
    rewards = [5.0] * 6 + [0.0, 3.0]
    advantages, _ = entropic_advantages(rewards)
    assert np.all(np.isfinite(advantages))
    assert advantages[0] > advantages[7] > advantages[6]
    assert np.abs(advantages).max() <= len(rewards)


def test_fixed_beta_that_overflows_is_refused_with_advice():
    with pytest.raises(ValueError, match="use a smaller beta or beta=None"):
        entropic_advantages([1.0, 0.0, 0.0], beta=1000.0)


def test_non_finite_rewards_are_refused():
    with pytest.raises(ValueError, match="finite"):
        entropic_advantages([1.0, float("nan")])


def test_mean_baseline_subtracts_the_group_mean():
    np.testing.assert_allclose(mean_baseline_advantages([1.0, 2.0, 6.0]), [-2.0, -1.0, 3.0])
