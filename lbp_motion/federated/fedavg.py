"""Federated Averaging as pure functions on state dicts (no Lightning, no data)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from lbp_motion.errors import LbpError


class AggregationError(LbpError):
    """A round cannot be aggregated (no usable client, mismatched states)."""


def fedavg(states: Sequence[Mapping[str, Tensor]], weights: Sequence[float]) -> dict[str, Tensor]:
    """Weighted mean of client state dicts: ``w = sum_k (n_k / n) w_k``.

    Floating tensors (parameters and buffers such as BatchNorm statistics) are averaged
    in float64 and cast back to their dtype. Integer tensors (e.g. BatchNorm's
    ``num_batches_tracked``) stay integers: the weighted mean rounded to the nearest
    integer. Boolean tensors take the weighted majority.

    Args:
        states: client state dicts with the same keys and shapes.
        weights: n_k of each client (need not sum to 1; must be positive).
    """
    if not states or len(states) != len(weights):
        raise AggregationError(
            f"fedavg needs one weight per state; got {len(states)} states, {len(weights)} weights"
        )
    total = float(sum(weights))
    if total <= 0 or any(w < 0 for w in weights):
        raise AggregationError(
            f"fedavg weights must be non-negative with a positive sum; got {list(weights)}"
        )
    keys = list(states[0])
    for i, s in enumerate(states[1:], start=1):
        if list(s) != keys:
            raise AggregationError(f"client state {i} has other keys than client state 0")
    shares = [float(w) / total for w in weights]
    out: dict[str, Tensor] = {}
    for key in keys:
        ref = states[0][key]
        acc = sum(share * s[key].detach().to(torch.float64) for share, s in zip(shares, states))
        if ref.is_floating_point() or ref.is_complex():
            out[key] = acc.to(ref.dtype)
        elif ref.dtype == torch.bool:
            out[key] = acc >= 0.5
        else:
            out[key] = torch.round(acc).to(ref.dtype)
    return out


def all_finite(state: Mapping[str, Tensor]) -> bool:
    """Whether every floating tensor of a state dict is finite."""
    return all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())


def server_momentum_update(
    global_state: Mapping[str, Tensor],
    averaged: Mapping[str, Tensor],
    velocity: dict[str, Tensor] | None,
    *,
    momentum: float,
    server_lr: float = 1.0,
) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """FedAvgM (Hsu et al., 2019): ``v = beta v + (w_global - w_avg)``,
    ``w_new = w_global - server_lr * v``; with beta = 0 and server_lr = 1 this is FedAvg.
    Only floating tensors move; others are taken from ``averaged``. Returns (new state,
    new velocity)."""
    velocity = dict(velocity or {})
    new: dict[str, Tensor] = {}
    for key, avg in averaged.items():
        if not avg.is_floating_point():
            new[key] = avg
            continue
        delta = global_state[key].to(avg.dtype) - avg
        v = momentum * velocity[key] + delta if key in velocity else delta
        velocity[key] = v
        new[key] = global_state[key].to(avg.dtype) - server_lr * v
    return new, velocity
