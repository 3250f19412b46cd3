"""What crosses the wire between the lbp Flower apps, and the check that nothing else does.

A message from the server to a client (``train``) holds:

* ``arrays``: an :class:`~flwr.app.ArrayRecord`, the global model's state dict (every
  entry, in the model's order; dtypes kept, so integer buffers stay integers);
* ``config``: a :class:`~flwr.app.ConfigRecord` with ``server-round`` (Flower's,
  counting from 1) and ``lbp-round`` (the lbp round, counting from 0);
* with SCAFFOLD, ``control``: the server's control variate ``c`` (an ArrayRecord of
  the trainable shared parameters' names).

With local layers (``fedbn``, ``local_parameters``) ``arrays`` and a reply's
``arrays`` hold the shared entries only: a site's own layers never travel.

A client's reply holds exactly:

* ``arrays``: the client's state dict after local training (same keys, shapes, dtypes);
* ``metrics``: a :class:`~flwr.app.MetricRecord` of scalars: ``num-examples`` (the
  site's real training windows before balancing: n_k), ``client-id``, ``train-seconds``
  and every finite scalar metric the local Trainer logged (``train/loss``, and
  ``dp/epsilon`` when differential privacy is on);
* with SCAFFOLD, ``control-delta``: the change of the site's control variate,
  ``c_i' - c_i`` (the names, shapes and dtypes of ``control``).

:func:`check_reply_content` rejects a reply with anything else (another record, a
record of another kind, an array of another name, shape or dtype, a non-scalar metric):
the server applies it to every reply before aggregating, so a client cannot send sample
data or subject ids through the apps.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from flwr.app import ArrayRecord, ConfigRecord, MetricRecord, RecordDict

from lbp_motion.errors import LbpError

ARRAYS = "arrays"
METRICS = "metrics"
CONFIG = "config"
NUM_EXAMPLES = "num-examples"
CLIENT_ID = "client-id"
CONTROL = "control"
CONTROL_DELTA = "control-delta"


class MessageContentError(LbpError):
    """A message holds something other than parameter arrays and scalar metrics."""


def state_to_arrays(state: Mapping[str, torch.Tensor]) -> ArrayRecord:
    """A state dict as an ArrayRecord (keys and order kept; dtypes kept)."""
    record = ArrayRecord()
    for key, value in state.items():
        record[key] = _array(value)
    return record


def _array(value: torch.Tensor):
    from flwr.app import Array

    return Array.from_numpy_ndarray(np.array(value.detach().cpu().numpy(), order="C", copy=True))


def arrays_to_state(record: ArrayRecord) -> dict[str, torch.Tensor]:
    """An ArrayRecord as a state dict of (writable) CPU tensors."""
    return {key: torch.from_numpy(np.array(record[key].numpy(), copy=True)) for key in record}


def array_spec(state: Mapping[str, torch.Tensor]) -> dict[str, tuple[tuple[int, ...], str]]:
    """Name -> (shape, numpy dtype name) of a state dict: what a reply may hold."""
    return {k: (tuple(v.shape), str(v.detach().cpu().numpy().dtype)) for k, v in state.items()}


def scalar_metrics(values: Mapping[str, Any]) -> dict[str, float | int]:
    """The finite scalar entries of ``values`` (tensors of one element included), as
    Python numbers; everything else is dropped."""
    out: dict[str, float | int] = {}
    for key, value in values.items():
        if isinstance(value, torch.Tensor):
            if value.numel() != 1:
                continue
            value = value.item()
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            continue
        value = value.item() if isinstance(value, (np.integer, np.floating)) else value
        if isinstance(value, float) and not math.isfinite(value):
            continue
        out[str(key)] = value
    return out


def train_reply_content(
    state: Mapping[str, torch.Tensor],
    metrics: Mapping[str, Any],
    control_delta: Mapping[str, torch.Tensor] | None = None,
) -> RecordDict:
    """The content of a client's reply to a ``train`` message."""
    content = RecordDict(
        {ARRAYS: state_to_arrays(state), METRICS: MetricRecord(scalar_metrics(metrics))}
    )
    if control_delta is not None:
        content[CONTROL_DELTA] = state_to_arrays(control_delta)
    return content


def train_message_content(
    state: Mapping[str, torch.Tensor],
    server_round: int,
    control: Mapping[str, torch.Tensor] | None = None,
) -> RecordDict:
    """The content of the server's ``train`` message of a round (1-based Flower round)."""
    config = ConfigRecord({"server-round": int(server_round), "lbp-round": int(server_round) - 1})
    content = RecordDict({ARRAYS: state_to_arrays(state), CONFIG: config})
    if control is not None:
        content[CONTROL] = state_to_arrays(control)
    return content


def _check_arrays(
    content: RecordDict, name: str, spec: Mapping[str, tuple[tuple[int, ...], str]]
) -> None:
    """The ArrayRecord ``name`` holds exactly the arrays of ``spec``, in its order."""
    arrays = content[name]
    if not isinstance(arrays, ArrayRecord):
        raise MessageContentError(
            f"reply record {name!r} is a {type(arrays).__name__}; expected an ArrayRecord"
        )
    if list(arrays.keys()) != list(spec):
        extra = sorted(set(arrays.keys()) - set(spec))
        missing = sorted(set(spec) - set(arrays.keys()))
        raise MessageContentError(
            f"reply {name} differ from the model's: extra {extra[:5]}, missing {missing[:5]}"
        )
    for key, (shape, dtype) in spec.items():
        arr = arrays[key]
        if tuple(arr.shape) != tuple(shape) or arr.dtype != dtype:
            raise MessageContentError(
                f"reply array {key!r} is {arr.dtype}{tuple(arr.shape)}; the model's is {dtype}{tuple(shape)}"
            )


def check_reply_content(
    content: RecordDict,
    spec: Mapping[str, tuple[tuple[int, ...], str]],
    control_spec: Mapping[str, tuple[tuple[int, ...], str]] | None = None,
) -> None:
    """Raise :class:`MessageContentError` unless ``content`` holds exactly one
    ArrayRecord ``arrays`` whose arrays have the names, shapes and dtypes of ``spec``
    (the global model's shared entries), one MetricRecord ``metrics`` of finite scalars
    with a positive ``num-examples`` and, with ``control_spec`` (SCAFFOLD), one
    ArrayRecord ``control-delta`` of exactly those arrays."""
    expected = sorted([ARRAYS, METRICS] + ([CONTROL_DELTA] if control_spec is not None else []))
    names = sorted(content.keys())
    if names != expected:
        raise MessageContentError(f"reply holds records {names}; expected exactly {expected}")
    metrics = content[METRICS]
    if not isinstance(metrics, MetricRecord):
        raise MessageContentError(
            f"reply record {METRICS!r} is a {type(metrics).__name__}; expected a MetricRecord"
        )
    _check_arrays(content, ARRAYS, spec)
    if control_spec is not None:
        _check_arrays(content, CONTROL_DELTA, control_spec)
    for key, value in metrics.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise MessageContentError(
                f"reply metric {key!r} is a {type(value).__name__}; expected a scalar"
            )
        if isinstance(value, float) and not math.isfinite(value):
            raise MessageContentError(f"reply metric {key!r} is {value}; expected a finite number")
    n = metrics.get(NUM_EXAMPLES)
    if n is None or n <= 0:
        raise MessageContentError(
            f"reply metric {NUM_EXAMPLES!r} is {n}; expected a positive number of examples"
        )
