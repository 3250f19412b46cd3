"""Replaying one FedAvg round by hand, to check the strategy's global model against it."""

from __future__ import annotations

from collections.abc import Callable

import torch

from lbp_motion.federated.clients import mix_seed
from lbp_motion.federated.fedavg import fedavg


def replayed_round(
    make_task: Callable[[], torch.nn.Module],
    start: dict,
    loader,
    num_examples,
    clients: int = 3,
    round_: int = 0,
) -> dict:
    """The n_k-weighted mean of the clients' models, each trained from ``start`` on its
    own batches of ``loader`` (a FederatedLoader) with the seeds the strategy uses."""
    states = []
    for client in range(clients):
        replay = make_task()
        replay.load_state_dict(start)
        opt = torch.optim.AdamW(replay.parameters(), lr=5e-4, weight_decay=0.01)
        torch.manual_seed(mix_seed(0, client, round_, 104729))
        replay.train()
        for batch in loader.client_loader(client, round_):
            opt.zero_grad()
            replay.loss(replay(batch["x"], batch["mask"]), batch["y"]).backward()
            opt.step()
        states.append(replay.state_dict())
    return fedavg(states, num_examples)
