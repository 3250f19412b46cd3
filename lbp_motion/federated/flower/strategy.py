"""The server strategy: Flower's FedAvg message plumbing, lbp's own aggregation.

:class:`LbpFedAvg` subclasses Flower's Message-API ``FedAvg`` (so Flower's wrappers,
e.g. ``DifferentialPrivacyServerSideFixedClipping``, can wrap it) and replaces its
aggregation by :meth:`lbp_motion.federated.server.ServerRule.aggregate` (clipping, then
the mean :func:`~lbp_motion.federated.fedavg.fedavg`, median or trimmed mean), the
function the in-process simulation uses: weights n_k = the ``num-examples`` each site reports, floating tensors
averaged in float64, integer buffers kept integers. Replies are averaged in the order
of their ``client-id`` (then node id), the order in which the simulation trains its
clients, so the float sums are the same and the two agree exactly.

Before aggregating, every reply is checked (:func:`.messages.check_reply_content`):
a reply holding anything but the model's arrays and scalar metrics, or non-finite
weights, is left out of the round like a failed client.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.serverapp.strategy import FedAvg

from lbp_motion.federated.fedavg import all_finite
from lbp_motion.federated.flower.messages import (
    ARRAYS,
    CLIENT_ID,
    METRICS,
    NUM_EXAMPLES,
    MessageContentError,
    array_spec,
    arrays_to_state,
    check_reply_content,
    state_to_arrays,
    train_message_content,
)
from lbp_motion.federated.server import ServerRule

log = logging.getLogger(__name__)


def select_nodes(
    node_ids: Iterable[int], fraction: float, min_clients: int, seed: int, server_round: int
) -> list[int]:
    """The nodes of a round: all of them with ``fraction`` 1, else
    ``max(min_clients, round(fraction * available))`` drawn with (seed, round)."""
    from lbp_motion.federated.clients import mix_seed

    nodes = sorted(int(n) for n in node_ids)
    m = len(nodes) if fraction >= 1 else max(min_clients, int(round(fraction * len(nodes))))
    if m >= len(nodes):
        return nodes
    rng = np.random.default_rng(mix_seed(seed, server_round, 7919))
    return sorted(rng.choice(nodes, size=m, replace=False).tolist())


class LbpFedAvg(FedAvg):
    """Flower FedAvg with lbp's aggregation and reply checks.

    Args:
        global_state: the initial global state dict (fixes the arrays a reply may hold).
        client_fraction, min_clients, seed: client selection (as in the simulation).
        uniform_weights: average the sites' weights with equal weights instead of n_k
            (what Flower's server-side DP wrapper's guarantee assumes; docs/deploy.md).
        rule: clipping and aggregation of the replies (the server optimiser's step is
            the caller's, on the result); default: the n_k-weighted mean.
    """

    def __init__(
        self,
        global_state: dict[str, torch.Tensor],
        *,
        client_fraction: float = 1.0,
        min_clients: int = 1,
        seed: int = 0,
        uniform_weights: bool = False,
        rule: ServerRule | None = None,
    ) -> None:
        super().__init__(
            fraction_train=client_fraction,
            fraction_evaluate=0.0,
            min_train_nodes=min_clients,
            min_evaluate_nodes=0,
            min_available_nodes=min_clients,
            weighted_by_key=NUM_EXAMPLES,
            arrayrecord_key=ARRAYS,
            configrecord_key="config",
        )
        self.spec = array_spec(global_state)
        self.dtypes = {k: v.dtype for k, v in global_state.items()}
        self.client_fraction = client_fraction
        self.min_clients = min_clients
        self.seed = seed
        self.uniform_weights = uniform_weights
        self.rule = rule or ServerRule()
        #: the round's global state, against which client updates are clipped and measured
        self.reference: dict[str, torch.Tensor] = dict(global_state)
        self.report: dict[str, Any] = {}  # update norms and clipped replies of the last round
        self.rejected: list[dict[str, Any]] = []  # replies left out in the last round, and why
        # the metrics of the replies averaged in the last round
        self.accepted: list[dict[str, Any]] = []
        #: with SCAFFOLD, the arrays a reply's ``control-delta`` must hold (else None)
        self.control_spec: dict[str, tuple[tuple[int, ...], str]] | None = None

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid
    ) -> Iterable[Message]:
        nodes = select_nodes(
            grid.get_node_ids(), self.client_fraction, self.min_clients, self.seed, server_round
        )
        state = arrays_to_state(arrays)
        content = train_message_content(state, server_round)
        for key, value in config.items():
            content["config"][key] = value
        return [Message(content=content, message_type="train", dst_node_id=n) for n in nodes]

    def usable_replies(self, replies: Iterable[Message]) -> list[Message]:
        """The replies that carry usable weights (errors, bad content and non-finite
        weights are recorded in ``rejected`` and left out), sorted by client id."""
        good: list[tuple[tuple[int, int], Message]] = []
        for msg in replies:
            node = int(msg.metadata.src_node_id)
            if msg.has_error():
                self.rejected.append(
                    {"node": node, "reason": f"error reply: {msg.error.reason}", "message": msg}
                )
                continue
            try:
                check_reply_content(msg.content, self.spec, self.control_spec)
            except MessageContentError as err:
                self.rejected.append({"node": node, "reason": str(err), "message": msg})
                continue
            if not all_finite(arrays_to_state(msg.content[ARRAYS])):
                self.rejected.append({"node": node, "reason": "non-finite weights", "message": msg})
                continue
            client = int(msg.content[METRICS].get(CLIENT_ID, -1))
            good.append(((client, node), msg))
        return [m for _, m in sorted(good, key=lambda t: t[0])]

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        replies = list(replies)
        if not replies:
            return None, None
        states = [arrays_to_state(m.content[ARRAYS]) for m in replies]
        weights = [float(m.content[METRICS][NUM_EXAMPLES]) for m in replies]
        averaged, self.report = self.rule.aggregate(
            self.reference, states, [1.0] * len(states) if self.uniform_weights else weights
        )
        averaged = {k: v.to(self.dtypes[k]) for k, v in averaged.items()}
        self.accepted = [
            {"node": int(m.metadata.src_node_id), **dict(m.content[METRICS])} for m in replies
        ]
        total = sum(weights)
        summary = {NUM_EXAMPLES: int(total), "clients": len(replies)}
        return state_to_arrays(averaged), MetricRecord(summary)
