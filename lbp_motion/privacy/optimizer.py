"""DP-SGD's optimiser step: per-unit clipping, Gaussian noise, then the wrapped optimiser.

:class:`UnitDPOptimizer` is Opacus' ``DPOptimizer`` (clip each per-sample gradient to
``max_grad_norm``, sum, add N(0, (noise_multiplier * max_grad_norm)^2) per coordinate,
divide by the expected batch size, step the wrapped optimiser, e.g. AdamW) with two
additions:

* **Per-subject clipping.** With ``groups`` set (the privacy unit of each sample of
  the batch), the per-sample gradients of one unit are first averaged, and the clipping
  bounds the *unit's* gradient: one subject moves the sum by at most ``max_grad_norm``,
  however many windows it has in the batch.
* **Empty and skipped batches.** A Poisson batch may be empty: the step is then noise
  only (the analysis counts it; skipping it would leak that the batch was empty). A batch
  on which no backward pass ran for another reason (a task's ``training_step`` returned
  None, a failed federated client) is no step at all, and costs no privacy.
* **Packed sequences.** The per-sample gradients of Opacus' DP LSTMs fed a
  ``PackedSequence`` come in length-sorted order; they are put back in batch order
  (:func:`~lbp_motion.privacy.convert.restore_sample_order`) before clipping.
"""

from __future__ import annotations

import torch
from opacus.optimizers.optimizer import DPOptimizer, _check_processed_flag, _mark_as_processed
from torch import Tensor

from lbp_motion.privacy.convert import restore_sample_order


class UnitDPOptimizer(DPOptimizer):
    """Opacus' ``DPOptimizer`` with per-unit (e.g. per-subject) clipping and empty
    Poisson batches (see the module docstring).

    Attributes set before each step (by :class:`~lbp_motion.privacy.DifferentialPrivacy`):
        groups: (B,) int64 privacy unit of each sample, or None (each sample is a unit).
        empty_batch: whether this step's Poisson batch is empty.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, **kwargs) -> None:
        super().__init__(optimizer, **kwargs)
        self.groups: Tensor | None = None
        self.empty_batch = False

    def pre_step(self, closure=None) -> bool:
        params = self.params
        restore_sample_order(params)
        have = [p for p in params if getattr(p, "grad_sample", None) is not None]
        if not have:
            if not self.empty_batch:
                return False  # no backward pass on this batch: no step, no privacy cost
            for p in params:
                p.grad_sample = p.new_zeros((0, *p.shape))
        elif len(have) < len(params):  # parameters the forward pass did not use
            n = len(self._get_flat_grad_sample(have[0]))
            for p in params:
                if getattr(p, "grad_sample", None) is None:
                    p.grad_sample = p.new_zeros((n, *p.shape))
        return super().pre_step(closure)

    def clip_and_accumulate(self) -> None:
        samples = self.grad_samples
        if self.groups is None or len(samples[0]) == 0:
            return super().clip_and_accumulate()
        groups = self.groups.to(samples[0].device)
        if len(groups) != len(samples[0]):
            raise RuntimeError(
                f"{len(groups)} privacy units for a batch of {len(samples[0])} samples"
            )
        _, inverse = torch.unique(groups, return_inverse=True)
        num_units = int(inverse.max()) + 1
        counts = torch.bincount(inverse, minlength=num_units).to(samples[0].dtype)
        per_unit = []
        for g in samples:
            summed = g.new_zeros((num_units, *g.shape[1:])).index_add_(0, inverse, g)
            per_unit.append(summed / counts.view(-1, *([1] * (g.dim() - 1))))
        norms = torch.stack(
            [u.reshape(num_units, -1).norm(2, dim=-1) for u in per_unit], dim=1
        ).norm(2, dim=1)
        factor = (self.max_grad_norm / (norms + 1e-6)).clamp(max=1.0)
        for p, unit_grad in zip(self.params, per_unit):
            _check_processed_flag(p.grad_sample)
            grad = torch.einsum("i,i...", factor.to(p.dtype), unit_grad.to(p.dtype))
            p.summed_grad = grad if p.summed_grad is None else p.summed_grad + grad
            _mark_as_processed(p.grad_sample)
