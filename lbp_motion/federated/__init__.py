"""Federated training: FedAvg math on state dicts and the simulation strategy."""

from lbp_motion.federated.fedavg import AggregationError, fedavg, server_momentum_update
from lbp_motion.federated.strategy import FedAvgStrategy

__all__ = ["AggregationError", "FedAvgStrategy", "fedavg", "server_momentum_update"]
