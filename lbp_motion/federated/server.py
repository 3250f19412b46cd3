"""What the server does with the clients' models of a round, as pure functions on state
dicts (no Lightning, no data); the in-process simulation
(:class:`~lbp_motion.federated.strategy.FedAvgStrategy`) and the Flower server
(:mod:`lbp_motion.federated.flower.apps`) call the same ones, so both give the same model.

A round on the server is three steps:

1. **Clip** (optional): each client's update ``u_k = w_k - w`` is scaled down to at
   most ``clip_norm`` (L2 norm over every floating tensor), so one broken or
   adversarial clinic cannot move the model far.
2. **Aggregate** the (clipped) client models: the n_k-weighted ``mean`` (FedAvg), the
   coordinate-wise ``median``, or the coordinate-wise ``trimmed_mean`` that drops the
   ``trim`` share of largest and smallest values per coordinate (Yin et al., 2018).
   The robust rules are unweighted: a client's weight must not buy it influence.
3. **Server optimiser** on the pseudo-gradient ``delta = aggregate - w``
   (Reddi et al., 2021, "Adaptive Federated Optimization", Algorithm 2):

   * ``sgd``: ``v = momentum v - delta``, ``w' = w - lr v`` (FedAvgM, Hsu et al. 2019;
     ``lr`` 1 and momentum 0: plain FedAvg);
   * ``adagrad``: ``m = b1 m + (1 - b1) delta``, ``v = v + delta^2``;
   * ``adam``: ``v = b2 v + (1 - b2) delta^2``;
   * ``yogi``: ``v = v - (1 - b2) delta^2 sign(v - delta^2)``;

   and for the three adaptive ones ``w' = w + lr m / (sqrt(v) + tau)``, with
   ``m`` starting at 0 and ``v`` at ``tau^2`` (as in the paper; no bias correction).

Only floating tensors move by steps 1 and 3; integer buffers (e.g. BatchNorm's
``num_batches_tracked``) are taken from the aggregate.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor

from lbp_motion.errors import ConfigError
from lbp_motion.federated.fedavg import AggregationError, fedavg, server_momentum_update

State = Mapping[str, Tensor]
AGGREGATIONS = ("mean", "median", "trimmed_mean")
SERVER_OPTIMIZERS = ("sgd", "adam", "yogi", "adagrad")


# -- step 1: clipping ------------------------------------------------------------------------
def update_norm(state: State, reference: State) -> float:
    """L2 norm of ``state - reference`` over every floating tensor."""
    total = 0.0
    for key, value in state.items():
        if value.is_floating_point():
            d = value.detach().to(torch.float64) - reference[key].detach().to(torch.float64)
            total += float(d.pow(2).sum())
    return math.sqrt(total)


def clip_update(state: State, reference: State, max_norm: float) -> tuple[dict[str, Tensor], float]:
    """``reference + u * min(1, max_norm / |u|)`` with ``u = state - reference`` (floating
    tensors; the rest as in ``state``), and the update's norm before clipping."""
    norm = update_norm(state, reference)
    scale = 1.0 if norm <= max_norm else max_norm / norm
    if scale == 1.0:
        return dict(state), norm
    out = {}
    for key, value in state.items():
        if value.is_floating_point():
            ref = reference[key].detach().to(torch.float64)
            out[key] = (ref + scale * (value.detach().to(torch.float64) - ref)).to(value.dtype)
        else:
            out[key] = value
    return out, norm


# -- step 2: aggregation ---------------------------------------------------------------------
def _check_states(states: Sequence[State]) -> list[str]:
    if not states:
        raise AggregationError("no client states to aggregate")
    keys = list(states[0])
    for i, s in enumerate(states[1:], start=1):
        if list(s) != keys:
            raise AggregationError(f"client state {i} has other keys than client state 0")
    return keys


def _coordinatewise(states: Sequence[State], reduce) -> dict[str, Tensor]:
    out: dict[str, Tensor] = {}
    for key in _check_states(states):
        ref = states[0][key]
        stacked = torch.stack([s[key].detach().to(torch.float64) for s in states])
        value = reduce(stacked)
        if ref.is_floating_point():
            out[key] = value.to(ref.dtype)
        elif ref.dtype == torch.bool:
            out[key] = value >= 0.5
        else:
            out[key] = torch.round(value).to(ref.dtype)
    return out


def coordinate_median(states: Sequence[State]) -> dict[str, Tensor]:
    """The coordinate-wise median (the mean of the two middle values for an even count)."""
    return _coordinatewise(states, lambda x: x.quantile(0.5, dim=0) if len(x) > 1 else x[0])


def trimmed_mean(states: Sequence[State], trim: float) -> dict[str, Tensor]:
    """Per coordinate, the mean after dropping the ``floor(trim K)`` largest and smallest
    of the K client values."""
    k = len(states)
    cut = int(math.floor(trim * k))
    if k - 2 * cut < 1:
        raise AggregationError(
            f"trimmed mean with trim={trim} drops {2 * cut} of {k} clients; nothing is left"
        )
    return _coordinatewise(states, lambda x: x.sort(dim=0).values[cut : k - cut].mean(dim=0))


# -- step 3: server optimisers ---------------------------------------------------------------
@dataclass(frozen=True)
class ServerRule:
    """How the server turns a round's client models into the next global model.

    Args:
        aggregation: ``mean`` (n_k-weighted, FedAvg), ``median`` or ``trimmed_mean``.
        trim: the share cut at each end by ``trimmed_mean``.
        clip_norm: clip each client's update to this L2 norm first (None: no clipping).
        optimizer: ``sgd`` (FedAvg / FedAvgM), ``adam``, ``yogi`` or ``adagrad``.
        lr: the server learning rate (eta).
        momentum: ``sgd``'s momentum (FedAvgM's beta).
        betas: ``(b1, b2)`` of the adaptive optimisers.
        tau: their adaptivity (epsilon) term.
        warmup_rounds: the server learning rate grows linearly over the first rounds
            (round r < warmup_rounds uses ``lr (r + 1) / warmup_rounds``).
    """

    aggregation: Literal["mean", "median", "trimmed_mean"] = "mean"
    trim: float = 0.1
    clip_norm: float | None = None
    optimizer: Literal["sgd", "adam", "yogi", "adagrad"] = "sgd"
    lr: float = 1.0
    momentum: float = 0.0
    betas: tuple[float, float] = (0.9, 0.99)
    tau: float = 1e-3
    warmup_rounds: int = 0

    def problems(self) -> list[str]:
        """What is wrong with these options, as ``name=value; expected ...`` strings."""
        out = []
        if self.aggregation not in AGGREGATIONS:
            out.append(
                f"aggregation={self.aggregation!r}; expected one of {', '.join(AGGREGATIONS)}"
            )
        if not 0 <= self.trim < 0.5:
            out.append(f"trim_fraction={self.trim}; expected a value in [0, 0.5)")
        if self.clip_norm is not None and not self.clip_norm > 0:
            out.append(f"clip_update_norm={self.clip_norm}; expected > 0 or null")
        if self.optimizer not in SERVER_OPTIMIZERS:
            out.append(
                f"server_optimizer={self.optimizer!r}; expected one of {', '.join(SERVER_OPTIMIZERS)}"
            )
        if not self.lr > 0:
            out.append(f"server_lr={self.lr}; expected > 0")
        if not 0 <= self.momentum < 1:
            out.append(f"server_momentum={self.momentum}; expected a value in [0, 1)")
        b1, b2 = self.betas
        if not (0 <= b1 < 1 and 0 <= b2 < 1):
            out.append(f"server_betas={list(self.betas)}; expected two values in [0, 1)")
        if not self.tau > 0:
            out.append(f"server_tau={self.tau}; expected > 0")
        if self.warmup_rounds < 0:
            out.append(f"warmup_rounds={self.warmup_rounds}; expected >= 0")
        return out

    def check(self, where: str = "trainer.strategy") -> None:
        """Raise one :class:`ConfigError` naming every bad option."""
        problems = self.problems()
        if problems:
            raise ConfigError(f"{where}: " + "; ".join(problems))

    @property
    def is_plain_fedavg(self) -> bool:
        return (
            self.aggregation == "mean"
            and self.clip_norm is None
            and self.optimizer == "sgd"
            and self.lr == 1.0
            and self.momentum == 0.0
            and self.warmup_rounds == 0
        )

    def lr_at(self, server_round: int) -> float:
        """The server learning rate of round ``server_round`` (0-based), after warm-up."""
        if self.warmup_rounds and server_round < self.warmup_rounds:
            return self.lr * (server_round + 1) / self.warmup_rounds
        return self.lr

    # -- the round -------------------------------------------------------------------------
    def aggregate(
        self, global_state: State, states: Sequence[State], weights: Sequence[float]
    ) -> tuple[dict[str, Tensor], dict[str, Any]]:
        """Steps 1 and 2: the clients' aggregate and a report (``update_norms`` before
        clipping, ``clipped``: how many clients were clipped)."""
        norms = [update_norm(s, global_state) for s in states]
        clipped = 0
        if self.clip_norm is not None:
            clipped_states = []
            for s, n in zip(states, norms):
                clipped_states.append(clip_update(s, global_state, self.clip_norm)[0])
                clipped += n > self.clip_norm
            states = clipped_states
        if self.aggregation == "median":
            aggregate = coordinate_median(states)
        elif self.aggregation == "trimmed_mean":
            aggregate = trimmed_mean(states, self.trim)
        else:
            aggregate = fedavg(states, weights)
        return aggregate, {"update_norms": norms, "clipped": clipped}

    def step(
        self,
        global_state: State,
        aggregate: State,
        server_state: dict[str, Any] | None,
        server_round: int = 0,
    ) -> tuple[dict[str, Tensor], dict[str, Any]]:
        """Step 3: the next global model from the aggregate, and the optimiser's state
        (``{"velocity": ...}`` for ``sgd``, ``{"m": ..., "v": ...}`` otherwise; plain
        data, kept in checkpoints)."""
        server_state = dict(server_state or {})
        lr = self.lr_at(server_round)
        if self.optimizer == "sgd":
            if self.momentum == 0 and lr == 1.0:
                return dict(aggregate), server_state
            new, velocity = server_momentum_update(
                global_state,
                aggregate,
                server_state.get("velocity"),
                momentum=self.momentum,
                server_lr=lr,
            )
            return new, {**server_state, "velocity": velocity}
        return self._adaptive_step(global_state, aggregate, server_state, lr)

    def _adaptive_step(
        self, global_state: State, aggregate: State, server_state: dict[str, Any], lr: float
    ) -> tuple[dict[str, Tensor], dict[str, Any]]:
        b1, b2 = self.betas
        m_prev, v_prev = server_state.get("m") or {}, server_state.get("v") or {}
        m_new, v_new, new = {}, {}, {}
        for key, agg in aggregate.items():
            if not agg.is_floating_point():
                new[key] = agg
                continue
            w = global_state[key].detach().to(torch.float64)
            delta = agg.detach().to(torch.float64) - w
            m = b1 * m_prev.get(key, torch.zeros_like(delta)) + (1 - b1) * delta
            v = v_prev.get(key, torch.full_like(delta, self.tau**2))
            d2 = delta.pow(2)
            if self.optimizer == "adagrad":
                v = v + d2
            elif self.optimizer == "adam":
                v = b2 * v + (1 - b2) * d2
            else:  # yogi
                v = v - (1 - b2) * d2 * torch.sign(v - d2)
            m_new[key], v_new[key] = m, v
            new[key] = (w + lr * m / (v.sqrt() + self.tau)).to(agg.dtype)
        return new, {**server_state, "m": m_new, "v": v_new}


# -- SCAFFOLD (Karimireddy et al., 2020) -------------------------------------------------------
def scaffold_client_control(
    client_control: State, gradient_sum: State, steps: int
) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """A client's new control variate after ``steps`` local steps: the mean of the
    (uncorrected) mini-batch gradients of those steps, ``c_i' = (1/K) sum_k g_k``, and
    its change ``c_i' - c_i`` (what the server adds up). Keys: the trainable parameters.

    With plain SGD this is exactly option II of the paper, ``c_i - c + (x - y_i) /
    (K lr)`` (each step moves ``lr (g_k + c - c_i)``); unlike option II it stays a
    gradient estimate under any local optimiser (with Adam, ``(x - y_i) / (K lr)`` is
    of the order of 1 per coordinate, not of a gradient, and the corrections swamp the
    gradients)."""
    new, delta = {}, {}
    for key, total in gradient_sum.items():
        c_i = client_control[key].to(torch.float64)
        value = total.to(torch.float64) / max(steps, 1)
        new[key] = value.to(client_control[key].dtype)
        delta[key] = (value - c_i).to(client_control[key].dtype)
    return new, delta


def scaffold_server_control(
    server_control: State, deltas: Sequence[State], num_clients: int
) -> dict[str, Tensor]:
    """The server's control variate after a round: ``c + (1 / N) sum_i (c_i' - c_i)``
    over the round's clients, N = all clients of the federation."""
    out = {}
    for key, c in server_control.items():
        total = sum(
            (d[key].to(torch.float64) for d in deltas), torch.zeros_like(c, dtype=torch.float64)
        )
        out[key] = (c.to(torch.float64) + total / num_clients).to(c.dtype)
    return out
