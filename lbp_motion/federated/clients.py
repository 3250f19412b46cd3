"""Per-client training data for federated rounds (the strategy never sees a sample).

:func:`split_clients` spreads the training samples over clients by subject
(:mod:`.partition`). :class:`FederatedLoader` is the training loader of a federated run. Each round it
selects clients (a seeded fraction), and for each selected client, in turn, yields the
batches of ``local_epochs`` passes over that client's own DataLoader, each batch with
a ``client`` entry (B,) holding the client's id. Batches never mix clients, and every
random choice is a function of (seed, client, round) only, so runs repeat exactly and
a resumed run continues as an uninterrupted one would.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from lbp_motion.errors import ConfigError
from lbp_motion.federated.partition import partition_subjects, subject_majority_labels


def mix_seed(*parts: int) -> int:
    """A 63-bit seed from integers (stable across processes, unlike ``hash``)."""
    return int(
        np.random.SeedSequence([int(p) for p in parts]).generate_state(2, np.uint64)[0]
        >> np.uint64(1)
    )


def select_clients(num_clients: int, fraction: float, seed: int, round_: int) -> list[int]:
    """The clients taking part in a round: ``max(1, round(fraction * K))`` of them,
    chosen by a generator seeded with (seed, round); sorted."""
    if not 0 < fraction <= 1:
        raise ConfigError(f"client_fraction={fraction}; expected a number in (0, 1]")
    m = max(1, int(round(fraction * num_clients)))
    if m >= num_clients:
        return list(range(num_clients))
    rng = np.random.default_rng(mix_seed(seed, round_, 7919))
    return sorted(rng.choice(num_clients, size=m, replace=False).tolist())


@dataclass
class FederationSpec:
    """How the training split is spread over clients (set by the FedAvg strategy)."""

    num_clients: int | None = 3
    partition: str = "iid"
    alpha: float = 0.5
    subject_groups: list[list[str]] | None = None
    local_epochs: int = 1
    client_fraction: float = 1.0
    seed: int = 0
    round_fn: Callable[[], int] = field(default=lambda: 0, repr=False)


@dataclass
class ClientData:
    """The training data of each client."""

    datasets: list[torch.utils.data.Dataset]  # balanced like the training split when it is
    num_examples: list[int]  # n_k: real training samples before balancing
    subjects: list[list[str]]  # the subjects each client holds


def split_clients(
    dataset: torch.utils.data.Dataset,
    info: dict,
    spec: FederationSpec,
    balance: Callable[[torch.utils.data.Dataset], torch.utils.data.Dataset] | None = None,
) -> ClientData:
    """Spread ``dataset`` (the real training samples) over clients by subject.

    Args:
        dataset: the training samples before balancing.
        info: aligned with ``dataset``: ``subject`` (N,), optional ``label`` (N,) and
            ``site`` (N,) or None (a DataModule's ``train_subject_info()``).
        spec: the partition settings.
        balance: applied to each client's part (e.g. the DataModule's ``balance_client``).
    """
    subjects = np.asarray(info["subject"])
    labels = info.get("label")
    majority = None if labels is None else subject_majority_labels(subjects.tolist(), list(labels))
    sites = None if info.get("site") is None else dict(zip(subjects.tolist(), info["site"]))
    clients = partition_subjects(
        subjects.tolist(),
        scheme=spec.partition,
        num_clients=spec.num_clients,
        labels=majority,
        sites=sites,
        groups=spec.subject_groups,
        alpha=spec.alpha,
        seed=spec.seed,
    )
    datasets, counts = [], []
    for members in clients:
        idx = np.flatnonzero(np.isin(subjects, members))
        counts.append(len(idx))
        part = torch.utils.data.Subset(dataset, idx.tolist())
        datasets.append(balance(part) if balance is not None else part)
    return ClientData(datasets, counts, clients)


class FederatedLoader:
    """The training loader of one federated round (see the module docstring).

    Args:
        client_datasets: one dataset per client (the client's own samples only).
        num_examples: n_k of each client (real training samples before balancing).
        batch_size: local mini-batch size.
        spec: the federation settings; ``spec.round_fn()`` gives the current round.
    """

    def __init__(
        self,
        client_datasets: Sequence[torch.utils.data.Dataset],
        num_examples: Sequence[int],
        batch_size: int,
        spec: FederationSpec,
    ) -> None:
        self.client_datasets = list(client_datasets)
        self.num_examples = [int(n) for n in num_examples]
        self.batch_size = batch_size
        self.spec = spec
        self.round = spec.round_fn()
        self.selected = select_clients(
            len(self.client_datasets), spec.client_fraction, spec.seed, self.round
        )

    def client_loader(self, client: int, epoch: int) -> torch.utils.data.DataLoader:
        """Client ``client``'s own DataLoader for local epoch ``epoch`` of this round."""
        generator = torch.Generator().manual_seed(
            mix_seed(self.spec.seed, client, self.round, epoch)
        )
        return torch.utils.data.DataLoader(
            self.client_datasets[client],
            batch_size=self.batch_size,
            shuffle=True,
            generator=generator,
        )

    def __len__(self) -> int:
        per_epoch = [-(-len(self.client_datasets[c]) // self.batch_size) for c in self.selected]
        return sum(per_epoch) * self.spec.local_epochs

    def __iter__(self) -> Iterator[dict]:
        for client in self.selected:
            for epoch in range(self.spec.local_epochs):
                for batch in self.client_loader(client, epoch):
                    batch["client"] = torch.full((len(batch["y"]),), client, dtype=torch.long)
                    yield batch
