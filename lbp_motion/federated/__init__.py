"""Federated training: FedAvg math on state dicts and the simulation strategy."""

from .fedavg import AggregationError, fedavg, server_momentum_update
from .strategy import FedAvgStrategy

__all__ = ["AggregationError", "FedAvgStrategy", "fedavg", "server_momentum_update"]
