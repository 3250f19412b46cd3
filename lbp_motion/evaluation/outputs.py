"""What every task's step returns, and how a task collects those outputs over an epoch.

Every task in :mod:`lbp_motion.tasks` computes a step as
:meth:`~lbp_motion.tasks.base.BaseTask.step` ``(batch, stage) ->`` :class:`StepOutput`:
the loss to optimise plus the per-sample tensors that evaluation needs (targets,
recordings, and class probabilities or decision scores). Validation and test steps hand
them to :class:`EpochOutputs`, which keeps them (detached, on the CPU) until the epoch
ends and then returns them *gathered from every process*: a threshold chosen on the
validation scores (:mod:`.thresholds`), recording-level metrics and the written files are
then computed on all the data, so several devices agree on them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch
from torch import Tensor


@dataclass
class StepOutput:
    """One step of a task (the same type for every task).

    Attributes:
        loss: the scalar to optimise (logged as ``<stage>/loss``).
        target: ``(B,)`` class index into the task's ``classes``.
        recording: ``(B,)`` recording index of each sample (-1 for synthetic samples).
        probs: ``(B, C)`` class probabilities, for tasks that predict by argmax.
        scores: ``(B,)`` decision scores, for tasks that threshold a score (anomaly
            detection, stage 1 of the hierarchical task).
        extra: more per-sample tensors a task needs at the epoch end (first dimension B),
            e.g. the hierarchical task's stage-2 predictions.
    """

    loss: Tensor
    target: Tensor
    recording: Tensor
    probs: Tensor | None = None
    scores: Tensor | None = None
    extra: dict[str, Tensor] = field(default_factory=dict)

    def per_sample(self) -> dict[str, Tensor]:
        """The per-sample tensors (everything but ``loss``), detached and on the CPU;
        probabilities and scores as float32."""
        out = {"target": self.target, "recording": self.recording}
        if self.probs is not None:
            out["probs"] = self.probs.float()
        if self.scores is not None:
            out["scores"] = self.scores.float()
        out.update(self.extra)
        return {key: value.detach().cpu() for key, value in out.items()}


def gather_across_processes(
    tensor: Tensor, all_gather: Callable[[Tensor], Tensor], world_size: int
) -> Tensor:
    """Concatenate ``tensor`` ``(N_r, ...)`` of every process ``r``, in rank order.

    ``all_gather`` is the collective (``LightningModule.all_gather``: it returns
    ``(world_size, ...)`` from one tensor of the same shape on every process); the
    processes may hold different numbers of samples, so every tensor is padded to the
    largest ``N_r`` first and the padding removed after. With one process, ``tensor``
    is returned as is.
    """
    if world_size <= 1:
        return tensor
    sizes = all_gather(torch.tensor([tensor.shape[0]], device=tensor.device))
    sizes = [int(n) for n in sizes.reshape(world_size).tolist()]
    pad = max(sizes) - tensor.shape[0]
    if pad:
        tensor = torch.cat([tensor, tensor.new_zeros((pad, *tensor.shape[1:]))])
    gathered = all_gather(tensor).reshape(world_size, max(sizes), *tensor.shape[1:])
    return torch.cat([gathered[rank, :n] for rank, n in enumerate(sizes)])


class EpochOutputs:
    """The :class:`StepOutput` s of one epoch, per stage, gathered at the epoch end.

    ``add`` keeps a step's per-sample tensors (detached, on the CPU, so that long
    validation sets do not hold device memory); ``gather`` concatenates them, gathers
    them from every process of the run (every process must call it: it is a collective
    when there are several), and forgets them.
    """

    def __init__(self, stages: Iterable[str] = ("val", "test")) -> None:
        self._steps: dict[str, list[dict[str, Tensor]]] = {stage: [] for stage in stages}

    def add(self, stage: str, output: StepOutput) -> None:
        """Keep ``output`` for the end of ``stage``'s epoch."""
        self._steps[stage].append(output.per_sample())

    def reset(self, stage: str) -> None:
        """Forget what ``stage`` collected (e.g. after Lightning's sanity check)."""
        self._steps[stage] = []

    def __len__(self) -> int:
        return sum(len(steps) for steps in self._steps.values())

    def gather(self, stage: str, task=None) -> dict[str, Tensor] | None:
        """``{name: tensor}`` of ``stage``'s epoch over every process (rank order), or
        None when nothing was collected. ``task``: the LightningModule whose
        ``all_gather`` and Trainer's ``world_size`` are used (None: this process only)."""
        steps, self._steps[stage] = self._steps[stage], []
        if not steps:
            return None
        local = {key: torch.cat([step[key] for step in steps]) for key in steps[0]}
        trainer = getattr(task, "_trainer", None)
        world_size = trainer.world_size if trainer is not None else 1
        if world_size <= 1:
            return local
        device = task.device
        return {
            key: gather_across_processes(value.to(device), task.all_gather, world_size).cpu()
            for key, value in local.items()
        }
