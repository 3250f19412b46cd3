"""The server's round as pure functions: clipping, robust aggregation and the server
optimisers of Reddi et al. (2021), each checked against a hand computation."""

from __future__ import annotations

import math

import pytest
import torch

from lbp_motion.errors import ConfigError
from lbp_motion.federated.fedavg import AggregationError, fedavg
from lbp_motion.federated.server import (
    ServerRule,
    clip_update,
    coordinate_median,
    trimmed_mean,
    update_norm,
)


def _s(*values, steps=None):
    out = {"w": torch.tensor(values, dtype=torch.float32)}
    if steps is not None:
        out["n"] = torch.tensor(steps)
    return out


def test_update_norm_and_clipping_scale_only_long_updates():
    ref = _s(0.0, 0.0)
    assert update_norm(_s(3.0, 4.0), ref) == pytest.approx(5.0)
    clipped, norm = clip_update(_s(3.0, 4.0, steps=7), _s(0.0, 0.0, steps=1), 1.0)
    assert norm == pytest.approx(5.0)
    torch.testing.assert_close(clipped["w"], torch.tensor([0.6, 0.8]))
    assert clipped["n"].item() == 7  # integers are not updates
    same, _ = clip_update(_s(0.3, 0.4), ref, 1.0)
    torch.testing.assert_close(same["w"], torch.tensor([0.3, 0.4]))


def test_median_and_trimmed_mean_by_hand():
    states = [_s(1.0, 10.0, steps=1), _s(2.0, 20.0, steps=2), _s(100.0, -50.0, steps=9)]
    med = coordinate_median(states)
    torch.testing.assert_close(med["w"], torch.tensor([2.0, 10.0]))
    assert med["n"].item() == 2
    four = [*states, _s(3.0, 30.0, steps=3)]
    torch.testing.assert_close(coordinate_median(four)["w"], torch.tensor([2.5, 15.0]))
    # trim 0.25 of 4 clients: drop one smallest and one largest per coordinate
    torch.testing.assert_close(trimmed_mean(four, 0.25)["w"], torch.tensor([2.5, 15.0]))
    torch.testing.assert_close(trimmed_mean(states, 0.0)["w"], fedavg(states, [1, 1, 1])["w"])
    with pytest.raises(AggregationError, match="nothing is left"):
        trimmed_mean(four[:2], 0.5)


def _poisoned_round(rule: ServerRule, attack: str) -> float:
    """Distance of the robust aggregate with one attacking client from the clean mean."""
    torch.manual_seed(0)
    g = {"w": torch.zeros(50)}
    honest = [{"w": torch.randn(50) * 0.1 + 1.0} for _ in range(4)]
    clean = fedavg(honest, [1] * 4)["w"]
    bad = {"w": honest[0]["w"] * -100.0 if attack == "scaled" else -honest[0]["w"]}
    agg, report = rule.aggregate(g, [*honest, bad], [1] * 5)
    return float((agg["w"] - clean).norm()), report


@pytest.mark.parametrize("attack", ["scaled", "sign_flipped"])
def test_robust_rules_stay_near_the_honest_clients_and_the_mean_does_not(attack):
    mean_gap, _ = _poisoned_round(ServerRule(), attack)
    for rule in (
        ServerRule(aggregation="median"),
        ServerRule(aggregation="trimmed_mean", trim=0.2),
    ):
        gap, _ = _poisoned_round(rule, attack)
        assert gap < 0.2 * mean_gap and gap < 0.5, (rule.aggregation, gap, mean_gap)
    if attack == "scaled":
        gap, report = _poisoned_round(ServerRule(clip_norm=10.0), attack)
        assert report["clipped"] == 1 and gap < 0.5 * mean_gap


def test_sgd_rule_is_fedavg_then_fedavgm():
    g, agg = _s(1.0), _s(0.5)
    new, state = ServerRule().step(g, agg, None)
    torch.testing.assert_close(new["w"], agg["w"])
    rule = ServerRule(momentum=0.9)
    new, state = rule.step(g, agg, None)  # v = 0.5 -> w = 0.5
    new2, _ = rule.step(new, _s(0.25), state)  # v = 0.9 * 0.5 + 0.25 = 0.7 -> -0.2
    torch.testing.assert_close(new2["w"], torch.tensor([-0.2]))


@pytest.mark.parametrize("name", ["adagrad", "adam", "yogi"])
def test_adaptive_server_optimisers_by_hand_over_two_rounds(name):
    lr, (b1, b2), tau = 0.1, (0.9, 0.99), 1e-3
    rule = ServerRule(optimizer=name, lr=lr, betas=(b1, b2), tau=tau)
    w, state, m, v = 1.0, None, 0.0, tau**2
    current = _s(w, steps=3)
    for agg_value in (0.4, 0.1):
        new, state = rule.step(current, _s(agg_value, steps=5), state)
        delta = agg_value - w
        m = b1 * m + (1 - b1) * delta
        if name == "adagrad":
            v = v + delta**2
        elif name == "adam":
            v = b2 * v + (1 - b2) * delta**2
        else:
            v = v - (1 - b2) * delta**2 * math.copysign(1.0, v - delta**2)
        w = w + lr * m / (math.sqrt(v) + tau)
        assert new["w"].item() == pytest.approx(w, rel=1e-5)
        assert new["n"].item() == 5  # integers from the aggregate
        current = new


def test_warmup_scales_the_server_learning_rate():
    rule = ServerRule(momentum=0.0, lr=1.0, warmup_rounds=4)
    assert [rule.lr_at(r) for r in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    new, _ = rule.step(_s(1.0), _s(0.0), None, server_round=0)
    torch.testing.assert_close(new["w"], torch.tensor([0.75]))


def test_bad_options_are_named_in_one_error():
    with pytest.raises(ConfigError) as err:
        ServerRule(aggregation="mode", trim=0.7, optimizer="rmsprop", tau=0).check()
    message = str(err.value)
    for part in (
        "aggregation='mode'",
        "trim_fraction=0.7",
        "server_optimizer='rmsprop'",
        "server_tau=0",
    ):
        assert part in message


def test_scaffold_control_variates_by_hand():
    from lbp_motion.federated.server import scaffold_client_control, scaffold_server_control

    c, c_i = {"w": torch.tensor([0.2, 0.0])}, {"w": torch.tensor([0.1, -0.1])}
    gradients = {"w": torch.tensor([3.6, -2.4])}  # the sum of 4 steps' raw gradients
    new, delta = scaffold_client_control(c_i, gradients, steps=4)
    # c_i' = (1/4) sum_k g_k = [0.9, -0.6]; delta = c_i' - c_i
    torch.testing.assert_close(new["w"], torch.tensor([0.9, -0.6]))
    torch.testing.assert_close(delta["w"], torch.tensor([0.8, -0.5]))
    other = {"w": torch.tensor([0.4, 0.1])}
    # c' = c + (delta_1 + delta_2) / N with N = 4 clients in the federation
    torch.testing.assert_close(
        scaffold_server_control(c, [delta, other], num_clients=4)["w"],
        torch.tensor([0.2 + 1.2 / 4, (-0.5 + 0.1) / 4]),
    )
