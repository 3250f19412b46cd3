"""Local layers: the state-dict keys a client keeps for itself and never sends to be
averaged (``local_parameters`` glob patterns, FedBN's normalisation layers). Used by
the simulation (:class:`~lbp_motion.federated.strategy.FedAvgStrategy`) and by the
Flower apps alike."""

from __future__ import annotations

import fnmatch

import torch

from lbp_motion.errors import ConfigError

#: module types whose parameters and buffers FedBN keeps at each client
NORM_LAYERS = (
    torch.nn.modules.batchnorm._NormBase,
    torch.nn.LayerNorm,
    torch.nn.GroupNorm,
)


def local_state_keys(
    module: torch.nn.Module, patterns: list[str], fedbn: bool = False
) -> frozenset[str]:
    """The state-dict keys of ``module`` that match any glob in ``patterns``, plus with
    ``fedbn`` those of its normalisation layers (``NORM_LAYERS``). A pattern that
    matches no key is a :class:`ConfigError` naming it."""
    keys = list(module.state_dict())
    out: set[str] = set()
    for pattern in patterns:
        matched = fnmatch.filter(keys, pattern)
        if not matched:
            raise ConfigError(
                f"trainer.strategy.init_args.local_parameters: {pattern!r} matches no parameter "
                f"of {type(module).__name__} (e.g. {', '.join(keys[:3])})"
            )
        out.update(matched)
    if fedbn:
        for name, sub in module.named_modules():
            if isinstance(sub, NORM_LAYERS):
                prefix = f"{name}." if name else ""
                out.update(k for k in keys if k.startswith(prefix) and "." not in k[len(prefix) :])
    return frozenset(out)
