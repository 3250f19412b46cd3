"""Privacy accounting: epsilon of a run, noise for a target epsilon, group privacy.

Pure functions over Opacus' accountants (no Lightning): a run's privacy history is a
list of ``(noise_multiplier, sample_rate, steps)`` entries, the same as Opacus'
``accountant.history``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

ACCOUNTANTS = ("rdp", "prv")


def make_accountant(mechanism: str):
    from opacus.accountants import create_accountant

    if mechanism not in ACCOUNTANTS:
        raise ValueError(f"accountant={mechanism!r}; expected one of {ACCOUNTANTS}")
    return create_accountant(mechanism=mechanism)


def epsilon_of(
    history: Sequence[tuple[float, float, int]], delta: float, mechanism: str = "rdp"
) -> float:
    """Epsilon at ``delta`` after the steps of ``history`` (0 before any step)."""
    if not history:
        return 0.0
    return _epsilon(
        tuple((float(s), float(q), int(n)) for s, q, n in history), float(delta), mechanism
    )


@functools.lru_cache(maxsize=256)  # an RDP evaluation takes 0.1-1 s; rounds ask again
def _epsilon(history: tuple, delta: float, mechanism: str) -> float:
    accountant = make_accountant(mechanism)
    accountant.history = list(history)
    return float(accountant.get_epsilon(delta=delta))


@functools.lru_cache(maxsize=64)  # clients with the same q and steps share one search
def noise_for_target(
    target_epsilon: float, delta: float, sample_rate: float, steps: int, mechanism: str = "rdp"
) -> float:
    """The noise multiplier with which ``steps`` steps at ``sample_rate`` spend at most
    ``target_epsilon`` at ``delta`` (Opacus' ``get_noise_multiplier``; the result's
    epsilon lies within 0.01 below the target)."""
    from opacus.accountants.utils import get_noise_multiplier

    return float(
        get_noise_multiplier(
            target_epsilon=target_epsilon,
            target_delta=delta,
            sample_rate=sample_rate,
            steps=steps,
            accountant=mechanism,
        )
    )


def group_privacy(epsilon: float, delta: float, k: int) -> tuple[float, float]:
    """(epsilon, delta)-DP for one unit implies (k epsilon, k e^((k-1) epsilon) delta)-DP
    for a group of k units (Dwork & Roth, Theorem 2.2 with delta). The delta is inf when
    it overflows; a delta of 1 or more means no guarantee."""
    if k <= 1:
        return epsilon, delta
    try:
        group_delta = k * math.exp((k - 1) * epsilon) * delta
    except OverflowError:
        group_delta = math.inf
    return k * epsilon, group_delta


@dataclass
class Party:
    """One data holder's DP-SGD state: the whole training set of a centralised run, or
    one client of a federated one.

    Attributes:
        num_units: privacy units in its data (windows, or subjects).
        sample_rate: q, each unit's inclusion probability per step.
        noise_multiplier: sigma.
        max_windows_per_subject: largest number of training windows of one subject
            (None when the data do not say which subject a window belongs to).
        history: the accountant's ``(sigma, q, steps)`` entries.
    """

    num_units: int
    sample_rate: float
    noise_multiplier: float
    max_windows_per_subject: int | None = None
    history: list = field(default_factory=list)

    def step(self) -> None:
        if (
            self.history
            and self.history[-1][0] == self.noise_multiplier
            and self.history[-1][1] == self.sample_rate
        ):
            sigma, q, n = self.history[-1]
            self.history[-1] = (sigma, q, n + 1)
        else:
            self.history.append((self.noise_multiplier, self.sample_rate, 1))

    @property
    def steps(self) -> int:
        return sum(int(h[2]) for h in self.history)

    @property
    def expected_batch_units(self) -> float:
        return self.sample_rate * self.num_units

    def to_dict(self) -> dict:
        return {
            "num_units": self.num_units,
            "sample_rate": self.sample_rate,
            "noise_multiplier": self.noise_multiplier,
            "max_windows_per_subject": self.max_windows_per_subject,
            "history": [list(h) for h in self.history],
        }

    @classmethod
    def from_dict(cls, d: dict) -> Party:
        return cls(
            num_units=int(d["num_units"]),
            sample_rate=float(d["sample_rate"]),
            noise_multiplier=float(d["noise_multiplier"]),
            max_windows_per_subject=d.get("max_windows_per_subject"),
            history=[(float(s), float(q), int(n)) for s, q, n in d.get("history", [])],
        )
