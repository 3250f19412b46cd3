"""Shared pieces of the sequence models: masks and masked pooling.

Every sequence model in :mod:`lbp_motion.models` follows one convention so that any
task can drive any model:

* constructor ``Model(in_features: int, num_classes: int, **hyperparameters)``;
* ``forward(x, mask=None) -> logits``: ``x`` (B, T, F) float, ``mask`` (B, T) bool with
  True for real frames (False for padding or frames without any detected joint);
  ``logits`` (B, num_classes);
* ``features(x, mask=None) -> (B, feature_dim)``: the pooled representation the
  classification head reads (used by joint and multiple-instance tasks).
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

ModelFactory = Callable[[int, int], nn.Module]
"""What a task takes as its network: called as ``factory(in_features, num_classes)``,
with the number of input features per frame (``data_spec["num_features"]``, or what
the task feeds the network, e.g. one more for a cascade's stage-1 score) and the number
of outputs (the task's classes), it returns a network of the convention above. Every
model class of :mod:`lbp_motion.models` is one; in a config, ``model:`` with a
``class_path`` and ``init_args`` (the hyperparameters) becomes one."""


def full_mask(x: Tensor, mask: Tensor | None) -> Tensor:
    """``mask`` as bool (B, T); all True where ``mask`` is None.

    A sample whose frames are all masked is treated as all real, so pooling and
    attention never divide by zero or produce NaN.
    """
    if mask is None:
        return torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
    mask = mask.to(torch.bool)
    empty = ~mask.any(dim=1, keepdim=True)
    return mask | empty


def masked_mean(h: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``h`` (B, T, D) over the frames where ``mask`` (B, T) is True -> (B, D)."""
    w = mask.unsqueeze(-1).to(h.dtype)
    return (h * w).sum(dim=1) / w.sum(dim=1).clamp_min(1.0)


def lengths_from_mask(mask: Tensor) -> Tensor:
    """Length up to and including the last real frame of each sample (B,), at least 1."""
    t = torch.arange(1, mask.shape[1] + 1, device=mask.device).expand_as(mask)
    return (t * mask.long()).amax(dim=1).clamp_min(1)


_UNROLLED = contextvars.ContextVar("lbp_unrolled_recurrence", default=False)


@contextmanager
def unrolled_recurrence() -> Iterator[None]:
    """Inside this context recurrent layers run as plain tensor operations, frame by
    frame, instead of PyTorch's LSTM kernels: ``torch.func.vmap`` can batch the former
    but not the latter. The results are the same; vectorised federated training uses
    it."""
    token = _UNROLLED.set(True)
    try:
        yield
    finally:
        _UNROLLED.reset(token)


def recurrence_unrolled() -> bool:
    """Whether :func:`unrolled_recurrence` is active."""
    return _UNROLLED.get()


class SequenceClassifier(nn.Module):
    """Base class: a sequence encoder followed by a linear head.

    Subclasses implement :meth:`features` and set ``self.feature_dim``; this class
    builds ``self.head`` with :meth:`build_head` and wires ``forward``.
    """

    feature_dim: int

    def build_head(self, num_classes: int, dropout: float = 0.0) -> None:
        self.num_classes = num_classes
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(self.feature_dim, num_classes))

    def features(self, x: Tensor, mask: Tensor | None = None) -> Tensor:  # pragma: no cover
        raise NotImplementedError

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        return self.head(self.features(x, mask))
