"""Poisson sampling of training batches, by window or by subject.

DP-SGD's privacy analysis (the sampled Gaussian mechanism) assumes that every step
includes each *privacy unit* independently with probability ``q``: batches have a random
size and may be empty. The loaders here do that:

* unit ``window``: each window (sample of the dataset) with probability ``q``;
* unit ``subject``: each subject with probability ``q``, and then *all* its windows (or a
  random ``max_windows_per_subject`` of them) come together into the batch, each tagged
  with the subject's position (``dp_group``), so that the optimiser can clip the
  subject's gradient as one.

An epoch is ``steps = ceil(1 / q)`` such batches, so each unit is used once per epoch in
expectation. Every draw comes from a ``torch.Generator`` seeded by the caller, so runs
repeat exactly.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch

from lbp_motion.federated.clients import FederatedLoader, mix_seed

GROUP_KEY = "dp_group"


def steps_per_epoch(sample_rate: float) -> int:
    """Poisson batches per epoch: ``ceil(1 / q)`` (each unit seen once in expectation)."""
    return max(1, math.ceil(1.0 / sample_rate - 1e-9))


class PoissonBatchSampler(torch.utils.data.Sampler[list[int]]):
    """``steps`` batches; each includes each group independently with probability
    ``sample_rate``, and with it the group's indices.

    Args:
        groups: the dataset indices of each privacy unit (one list per window for unit
            ``window``, one per subject for unit ``subject``).
        sample_rate: q, the inclusion probability of a unit per step.
        steps: batches per pass.
        generator: the source of randomness, or a function that returns the seed of
            each pass (called when a pass starts; e.g. from the epoch, so that a resumed
            run draws what an uninterrupted one would).
        max_per_group: keep at most this many indices of an included group (drawn at
            random each time); ``None`` keeps all.
    """

    def __init__(
        self,
        groups: Sequence[Sequence[int]],
        sample_rate: float,
        steps: int,
        generator: torch.Generator | Callable[[], int],
        max_per_group: int | None = None,
    ) -> None:
        self.groups = [list(g) for g in groups]
        self.sample_rate = float(sample_rate)
        self.steps = int(steps)
        self.generator = generator
        self.max_per_group = max_per_group

    def __len__(self) -> int:
        return self.steps

    def __iter__(self) -> Iterator[list[int]]:
        n = len(self.groups)
        gen = self.generator
        if not isinstance(gen, torch.Generator):
            gen = torch.Generator().manual_seed(int(gen()))
        for _ in range(self.steps):
            chosen = (
                torch.nonzero(torch.rand(n, generator=gen) < self.sample_rate).flatten().tolist()
            )
            batch: list[int] = []
            for g in chosen:
                members = self.groups[g]
                if self.max_per_group is not None and len(members) > self.max_per_group:
                    keep = torch.randperm(len(members), generator=gen)[: self.max_per_group]
                    members = [members[i] for i in sorted(keep.tolist())]
                batch.extend(members)
            yield batch


class GroupTagged(torch.utils.data.Dataset):
    """Adds ``dp_group`` (int64 scalar: the item's privacy unit) to each dict item."""

    def __init__(self, dataset: torch.utils.data.Dataset, group_of_index: Sequence[int]) -> None:
        self.dataset = dataset
        self.group_of_index = np.asarray(group_of_index, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> dict:
        item = dict(self.dataset[i])
        item[GROUP_KEY] = torch.tensor(self.group_of_index[i], dtype=torch.long)
        return item


class EmptySafeCollate:
    """The default collate, and for an empty batch the same structure with 0 rows."""

    def __init__(self, dataset: torch.utils.data.Dataset) -> None:
        self.dataset = dataset
        self._empty = None

    def __call__(self, items: list) -> dict:
        if items:
            return torch.utils.data.default_collate(items)
        if self._empty is None:
            one = torch.utils.data.default_collate([self.dataset[0]])
            self._empty = {k: v[:0] for k, v in one.items()}
        return {k: v.clone() for k, v in self._empty.items()}


def unit_groups(
    num_samples: int, subjects: Sequence[str] | None
) -> tuple[list[list[int]], list[int]]:
    """Privacy units of a dataset: one per window (``subjects`` None) or one per subject
    (in order of first appearance). Returns (indices of each unit, unit of each index)."""
    if subjects is None:
        return [[i] for i in range(num_samples)], list(range(num_samples))
    if len(subjects) != num_samples:
        raise ValueError(f"{len(subjects)} subject ids for {num_samples} samples")
    position: dict[str, int] = {}
    groups: list[list[int]] = []
    unit_of = []
    for i, s in enumerate(subjects):
        if s not in position:
            position[s] = len(groups)
            groups.append([])
        groups[position[s]].append(i)
        unit_of.append(position[s])
    return groups, unit_of


def poisson_loader(
    dataset: torch.utils.data.Dataset,
    subjects: Sequence[str] | None,
    sample_rate: float,
    generator: torch.Generator | Callable[[], int],
    *,
    max_windows_per_subject: int | None = None,
    num_workers: int = 0,
) -> torch.utils.data.DataLoader:
    """A DataLoader of one epoch of Poisson batches over ``dataset`` (see the module
    docstring); ``subjects`` (one id per sample) selects unit ``subject``."""
    groups, unit_of = unit_groups(len(dataset), subjects)
    tagged = GroupTagged(dataset, unit_of)
    sampler = PoissonBatchSampler(
        groups,
        sample_rate,
        steps_per_epoch(sample_rate),
        generator,
        max_per_group=max_windows_per_subject if subjects is not None else None,
    )
    return torch.utils.data.DataLoader(
        tagged, batch_sampler=sampler, collate_fn=EmptySafeCollate(tagged), num_workers=num_workers
    )


class PoissonFederatedLoader(FederatedLoader):
    """A :class:`~lbp_motion.federated.clients.FederatedLoader` whose clients draw Poisson
    batches from their own data: client k's local epoch ``e`` of round ``r`` is
    ``ceil(1 / q_k)`` batches, seeded by (seed, k, r, e). An empty batch still carries
    its client (``client_id``, a 0-d tensor, besides the empty ``client``)."""

    def __init__(
        self,
        base: FederatedLoader,
        sample_rates: Sequence[float],
        subjects: Sequence[Sequence[str] | None],
        max_windows_per_subject: int | None = None,
    ) -> None:
        self.client_datasets = base.client_datasets
        self.num_examples = base.num_examples
        self.batch_size = base.batch_size
        self.spec = base.spec
        self.round = base.round
        self.selected = base.selected
        self.sample_rates = list(sample_rates)
        self.subjects = list(subjects)
        self.max_windows_per_subject = max_windows_per_subject

    def client_loader(self, client: int, epoch: int) -> torch.utils.data.DataLoader:
        generator = torch.Generator().manual_seed(
            mix_seed(self.spec.seed, client, self.round, epoch, 2718)
        )
        return poisson_loader(
            self.client_datasets[client],
            self.subjects[client],
            self.sample_rates[client],
            generator,
            max_windows_per_subject=self.max_windows_per_subject,
        )

    def __len__(self) -> int:
        return (
            sum(steps_per_epoch(self.sample_rates[c]) for c in self.selected)
            * self.spec.local_epochs
        )

    def __iter__(self) -> Iterator[dict]:
        for client in self.selected:
            for epoch in range(self.spec.local_epochs):
                for batch in self.client_loader(client, epoch):
                    batch["client"] = torch.full((len(batch["y"]),), client, dtype=torch.long)
                    batch["client_id"] = torch.tensor(client, dtype=torch.long)
                    yield batch
