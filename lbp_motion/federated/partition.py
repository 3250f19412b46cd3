"""Client partitions for federated training: which training samples each client holds.

Partitions are always by subject (a subject's samples never sit at two clients), so
a client is a clinic with its own patients. Schemes:

* ``site``: one client per value of the ``site`` column of labels.csv, in sorted order;
* ``groups``: explicit groups of subject ids, one per client;
* ``iid``: subjects shuffled (seeded) and dealt round-robin to the clients;
* ``dirichlet``: label skew: for each class, the shares of its subjects that go to each
  client are drawn from Dirichlet(alpha) (small alpha: clients see different severity
  mixes); every client gets at least one subject.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from lbp_motion.datasets.splits import majority
from lbp_motion.errors import ConfigError

PartitionScheme = Literal["site", "groups", "iid", "dirichlet"]


def partition_subjects(
    subjects: Sequence[str],
    *,
    scheme: str,
    num_clients: int | None = None,
    labels: dict[str, str] | None = None,
    sites: dict[str, str] | None = None,
    groups: Sequence[Sequence[str]] | None = None,
    alpha: float = 0.5,
    seed: int = 0,
) -> list[list[str]]:
    """Subjects of each client (lists sorted, clients in a fixed order).

    Args:
        subjects: the training subjects.
        scheme: ``site``, ``groups``, ``iid`` or ``dirichlet``.
        num_clients: number of clients (``site`` and ``groups`` imply it; when given
            it must agree).
        labels: subject -> label, for ``dirichlet``.
        sites: subject -> site, for ``site``.
        groups: explicit subject groups, for ``groups``.
    """
    subjects = sorted(set(subjects))
    rng = np.random.default_rng(seed)
    if scheme == "site":
        if not sites or any(sites.get(s) is None for s in subjects):
            raise ConfigError(
                "partition 'site' needs a 'site' value for every training recording in labels.csv"
            )
        names = sorted({sites[s] for s in subjects})
        clients = [[s for s in subjects if sites[s] == name] for name in names]
    elif scheme == "groups":
        if not groups:
            raise ConfigError(
                "partition 'groups' needs subject_groups: a list of subject lists, one per client"
            )
        known = set(subjects)
        seen: set[str] = set()
        for g in groups:
            twice = sorted(seen & set(g))
            if twice:
                raise ConfigError(
                    f"subject_groups name subjects {twice[:5]} in more than one group"
                )
            seen |= set(g)
        clients = [sorted(set(g) & known) for g in groups]
        unknown = sorted({s for g in groups for s in g} - known)
        if unknown:
            raise ConfigError(
                f"subject_groups name subjects {unknown[:5]} that are not in the training split"
            )
    elif scheme == "iid":
        k = _require_clients(num_clients, len(subjects))
        order = rng.permutation(len(subjects))
        clients = [sorted(subjects[i] for i in order[c::k]) for c in range(k)]
    elif scheme == "dirichlet":
        k = _require_clients(num_clients, len(subjects))
        if labels is None:
            raise ConfigError("partition 'dirichlet' needs the subjects' labels")
        clients = [[] for _ in range(k)]
        for label in sorted({labels[s] for s in subjects}):
            members = [
                subjects[i] for i in rng.permutation(len(subjects)) if labels[subjects[i]] == label
            ]
            shares = rng.dirichlet(np.full(k, alpha))
            cuts = (np.cumsum(shares)[:-1] * len(members)).round().astype(int)
            for c, part in enumerate(np.split(np.asarray(members, dtype=object), cuts)):
                clients[c].extend(part.tolist())
        # every client needs data: move a subject from the largest client to each empty one
        for c in range(k):
            if not clients[c]:
                donor = max(range(k), key=lambda i: len(clients[i]))
                clients[c].append(clients[donor].pop())
        clients = [sorted(c) for c in clients]
    else:
        raise ConfigError(f"partition={scheme!r}; expected one of site, groups, iid, dirichlet")
    if num_clients is not None and len(clients) != num_clients:
        raise ConfigError(
            f"partition {scheme!r} gives {len(clients)} clients but num_clients={num_clients}"
        )
    empty = [i for i, c in enumerate(clients) if not c]
    if empty:
        raise ConfigError(f"partition {scheme!r}: client(s) {empty} would hold no training subject")
    return clients


def _require_clients(num_clients: int | None, num_subjects: int) -> int:
    if num_clients is None or num_clients < 1:
        raise ConfigError(f"num_clients={num_clients}; expected a positive number of clients")
    if num_clients > num_subjects:
        raise ConfigError(
            f"num_clients={num_clients} but the training split has only {num_subjects} subjects"
        )
    return num_clients


def subject_majority_labels(subjects: Sequence[str], labels: Sequence[str]) -> dict[str, str]:
    """Most frequent label of each subject's samples."""
    per: dict[str, list[str]] = {}
    for s, y in zip(subjects, labels):
        per.setdefault(s, []).append(y)
    return {s: majority(v) for s, v in per.items()}
