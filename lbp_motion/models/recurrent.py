"""Recurrent sequence classifiers: the TUG method's LSTM baseline and PLAAN's LSTM family
(Bi-LSTM, Attention-LSTM, LSTM-DNN) for the EmoPain method.

Masks. Every model here stops its sequences at the last real frame of ``mask``
(:func:`~lbp_motion.models.common.lengths_from_mask`; see :class:`StackedLSTM`), so
trailing padding never reaches what the recurrence returns, and excludes every masked
frame from pooling and attention. A masked frame *inside* a sequence (e.g. a frame
without any detected joint) is still a step of the recurrence (the DataModules zero
such frames); it is never pooled or attended to.

Pooling. ``pooling="last"`` reads the output at the last real frame, which is what a
Keras ``LSTM(..., return_sequences=False)`` returns (the last step; with Keras'
``Masking``, the last unmasked step), i.e. how PLAAN's models reduce a sequence.
Where the last layer is bidirectional, its forward half is read at the last real
frame and its backward half at the first frame (the final state of each direction,
as Keras' ``Bidirectional`` returns). ``pooling="mean"`` averages the outputs over the
real frames.

Per-frame outputs (an optional part of the model convention, see ``docs/models.md``):
:class:`LSTMClassifier`, :class:`BiLSTMClassifier` and :class:`LSTMDNNClassifier`
offer ``frame_features(x, mask) -> (B, T, feature_dim)``, the layers between the
recurrence and the head applied to every frame (zeros at masked frames), and
``frame_logits(x, mask) -> (B, T, num_classes)``, the head applied to them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.func import functional_call
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from lbp_motion.models.common import (
    SequenceClassifier,
    full_mask,
    lengths_from_mask,
    masked_mean,
    recurrence_unrolled,
)

POOLINGS = ("mean", "last")


class StackedLSTM(nn.Module):
    """LSTM layers of possibly different widths (e.g. 1024-512-256), applied in turn.

    Padding at the end (past the last real frame of ``mask``) never reaches what a
    layer returns: a forward direction's output at frame t depends on frames <= t
    only, so each layer runs over the whole padded batch and its output is zeroed past
    each length; a backward direction runs over each sequence reversed within its
    length. This gives what packed sequences give (tests compare the two) without
    their backward pass, several times slower on CPU when lengths differ
    (``benchmarks/recurrent.py``). Under DP-SGD a bidirectional layer (Opacus'
    ``DPLSTM``) still runs on packed sequences. Output (B, T, D_last) with zeros past
    each length.
    """

    def __init__(
        self,
        in_features: int,
        hidden_sizes: Sequence[int],
        *,
        bidirectional_first: bool = False,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if not hidden_sizes:
            raise ValueError("hidden_sizes must name at least one layer")
        layers, width = [], in_features
        for i, size in enumerate(hidden_sizes):
            bi = bidirectional_first and i == 0
            layers.append(nn.LSTM(width, size, batch_first=True, bidirectional=bi))
            width = size * (2 if bi else 1)
        self.layers = nn.ModuleList(layers)
        self.dropout = nn.Dropout(dropout)
        self.output_dim = width

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        lengths = lengths_from_mask(mask)
        real = _frames_before(lengths, x.shape[1]).unsqueeze(-1).to(x.dtype)  # (B, T, 1)
        direction = unrolled_lstm if recurrence_unrolled() else padded_lstm
        h = x
        for i, lstm in enumerate(self.layers):
            if lstm.bidirectional and not isinstance(lstm, nn.LSTM) and direction is padded_lstm:
                # Opacus' DPLSTM (DP-SGD): its per-sample gradient hooks see only its own
                # calls, so it runs both directions at once, on packed sequences.
                h = _packed_lstm(lstm, h, lengths)
            else:
                directions = [direction(lstm, h, real, "")]
                if lstm.bidirectional:
                    directions.append(direction(lstm, h, real, "_reverse"))
                h = torch.cat(directions, dim=-1)
            if i < len(self.layers) - 1:
                h = self.dropout(h)
        return h


def _frames_before(lengths: Tensor, frames: int) -> Tensor:
    """(B, T) bool: True at the frames before each sample's length."""
    return torch.arange(frames, device=lengths.device) < lengths.unsqueeze(1)


def _packed_lstm(lstm: nn.Module, x: Tensor, lengths: Tensor) -> Tensor:
    packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
    return pad_packed_sequence(lstm(packed)[0], batch_first=True, total_length=x.shape[1])[0]


def _reversed_within_length(x: Tensor, real: Tensor) -> Tensor:
    """``x`` (B, T, F) with each sample's real frames in reverse order (frame t <-> frame
    length - 1 - t) and the padding where it was; applying it twice gives ``x``."""
    lengths = real.squeeze(-1).sum(dim=1, keepdim=True).long()  # (B, 1)
    t = torch.arange(x.shape[1], device=x.device).unsqueeze(0)  # (1, T)
    index = torch.where(t < lengths, lengths - 1 - t, t)
    return x.gather(1, index.unsqueeze(-1).expand_as(x))


def padded_lstm(lstm: nn.LSTM, x: Tensor, real: Tensor, suffix: str) -> Tensor:
    """One direction of a one-layer ``lstm`` over ``x`` (B, T, F) with PyTorch's own
    kernels; ``real`` (B, T, 1) is 1 up to each sample's length and the output is 0
    past it. The backward direction (``suffix="_reverse"``) starts at the last real
    frame, as packed sequences do."""
    if not lstm.bidirectional:
        return lstm(x)[0] * real
    one_way = nn.LSTM(
        lstm.input_size, lstm.hidden_size, bias=lstm.bias, batch_first=True, device="meta"
    )  # a shape only: functional_call runs it with this layer's weights
    weights = {name: getattr(lstm, name + suffix) for name, _ in one_way.named_parameters()}
    if not suffix:
        return functional_call(one_way, weights, (x,))[0] * real
    out = functional_call(one_way, weights, (_reversed_within_length(x, real),))[0]
    return _reversed_within_length(out, real) * real


def unrolled_lstm(lstm: nn.LSTM, x: Tensor, real: Tensor, suffix: str) -> Tensor:
    """One direction of a one-layer ``lstm`` over ``x`` (B, T, F), frame by frame, with
    PyTorch's gate order (input, forget, cell, output). ``real`` (B, T, 1) is 1 up to
    each sample's length: past it the state is held and the output is 0, and the
    reverse direction (``suffix="_reverse"``) starts at the last real frame, as packed
    sequences do."""
    w_ih, w_hh = getattr(lstm, f"weight_ih_l0{suffix}"), getattr(lstm, f"weight_hh_l0{suffix}")
    gates_x = x @ w_ih.T
    if lstm.bias:
        gates_x = (
            gates_x + getattr(lstm, f"bias_ih_l0{suffix}") + getattr(lstm, f"bias_hh_l0{suffix}")
        )
    h = x.new_zeros(*x.shape[:-1][:-1], lstm.hidden_size)
    c = torch.zeros_like(h)
    frames = range(x.shape[-2] - 1, -1, -1) if suffix else range(x.shape[-2])
    out: list[Tensor] = [h] * x.shape[-2]
    for t in frames:
        i, f, g, o = (gates_x[..., t, :] + h @ w_hh.T).chunk(4, dim=-1)
        c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h_new = torch.sigmoid(o) * torch.tanh(c_new)
        m = real[..., t, :]
        c, h = m * c_new + (1 - m) * c, m * h_new + (1 - m) * h
        out[t] = m * h_new
    return torch.stack(out, dim=-2)


def _check_pooling(pooling: str) -> str:
    if pooling not in POOLINGS:
        raise ValueError(f"pooling={pooling!r}; expected 'mean' or 'last'")
    return pooling


def pool_sequence(h: Tensor, mask: Tensor, pooling: str, bidirectional: bool = False) -> Tensor:
    """Reduce LSTM outputs ``h`` (B, T, D) over the real frames of ``mask`` (B, T) -> (B, D).

    ``"mean"``: masked mean. ``"last"``: the output at the last real frame; with
    ``bidirectional`` (the last layer is), the forward half (first D/2 units) at the last
    real frame and the backward half at frame 0, i.e. each direction's final state.
    """
    if pooling == "mean":
        return masked_mean(h, mask)
    rows = torch.arange(h.shape[0], device=h.device)
    last = h[rows, (lengths_from_mask(mask) - 1).to(h.device)]
    if not bidirectional:
        return last
    half = h.shape[-1] // 2
    return torch.cat([last[:, :half], h[:, 0, half:]], dim=-1)


def _zero_masked(h: Tensor, mask: Tensor) -> Tensor:
    return h * mask.unsqueeze(-1).to(h.dtype)


class LSTMClassifier(SequenceClassifier):
    """Stacked LSTM over frames, pooled over time, linear head (PLAAN's "LSTM").

    SPEC sizes: 128-64-128 for protective behaviour (the default) and 1024-512-256 for
    pain (``hidden_sizes: [1024, 512, 256]`` in a config).

    Args:
        in_features: features per frame F.
        num_classes: output classes.
        hidden_sizes: width of each LSTM layer.
        bidirectional: make the first layer bidirectional (PLAAN's Bi-LSTM; see also
            :class:`BiLSTMClassifier`).
        dropout: between layers and before the head.
        pooling: ``"mean"`` (masked mean over the real frames; the default, as in the
            TUG baseline) or ``"last"`` (the output at the last real frame, as Keras'
            ``return_sequences=False``).
    """

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        *,
        hidden_sizes: Sequence[int] = (128, 64, 128),
        bidirectional: bool = False,
        dropout: float = 0.1,
        pooling: str = "mean",
    ) -> None:
        super().__init__()
        self.pooling = _check_pooling(pooling)
        self.encoder = StackedLSTM(
            in_features, hidden_sizes, bidirectional_first=bidirectional, dropout=dropout
        )
        self._last_bidirectional = self.encoder.layers[-1].bidirectional
        self.feature_dim = self.encoder.output_dim
        self.build_head(num_classes, dropout)

    def features(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        mask = full_mask(x, mask)
        return pool_sequence(self.encoder(x, mask), mask, self.pooling, self._last_bidirectional)

    def frame_features(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """The last LSTM layer's output at every frame (B, T, feature_dim); zeros at
        masked frames."""
        mask = full_mask(x, mask)
        return _zero_masked(self.encoder(x, mask), mask)

    def frame_logits(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """The head applied to every frame's features (B, T, num_classes); values at
        masked frames carry no information (ignore them by ``mask``)."""
        return self.head(self.frame_features(x, mask))


class BiLSTMClassifier(LSTMClassifier):
    """PLAAN's Bi-LSTM: one bidirectional LSTM layer, then unidirectional ones (SPEC:
    1024 bidirectional, then 512 and 256), the output at the last real frame, linear
    head. An :class:`LSTMClassifier` with ``bidirectional=True`` and other defaults
    (same parameter names).

    Args:
        in_features: features per frame F.
        num_classes: output classes.
        hidden_sizes: widths; the first layer is bidirectional (2 x its width out).
        dropout: between layers and before the head.
        pooling: ``"last"`` (default, Keras' ``return_sequences=False``) or ``"mean"``.
    """

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        *,
        hidden_sizes: Sequence[int] = (1024, 512, 256),
        dropout: float = 0.1,
        pooling: str = "last",
    ) -> None:
        super().__init__(
            in_features,
            num_classes,
            hidden_sizes=hidden_sizes,
            bidirectional=True,
            dropout=dropout,
            pooling=pooling,
        )


class AttentionLSTMClassifier(SequenceClassifier):
    """PLAAN's Attention-LSTM: stacked LSTM (SPEC 128-64-128), additive attention over
    the frames, a dense layer, linear head.

    Attention: ``score_t = v^T tanh(W h_t + b)`` with ``W`` of ``attention_size`` units
    (SPEC: 64); softmax over the *real* frames only (masked frames get weight exactly
    0); the context is the attention-weighted sum of the ``h_t``. Then
    ``Linear(dense_size) + ReLU`` (SPEC: 64), whose output is :meth:`features`.

    Args:
        in_features: features per frame F.
        num_classes: output classes.
        hidden_sizes: width of each LSTM layer.
        attention_size: units of the attention layer.
        dense_size: units of the dense layer after the attention (``feature_dim``).
        dropout: between LSTM layers, after the dense layer (before the head).
    """

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        *,
        hidden_sizes: Sequence[int] = (128, 64, 128),
        attention_size: int = 64,
        dense_size: int = 64,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.encoder = StackedLSTM(in_features, hidden_sizes, dropout=dropout)
        width = self.encoder.output_dim
        self.attention = nn.Sequential(
            nn.Linear(width, attention_size), nn.Tanh(), nn.Linear(attention_size, 1, bias=False)
        )
        self.dense = nn.Sequential(nn.Linear(width, dense_size), nn.ReLU())
        self.feature_dim = dense_size
        self.build_head(num_classes, dropout)

    def _attend(self, x: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor]:
        mask = full_mask(x, mask)
        h = self.encoder(x, mask)  # (B, T, D)
        scores = self.attention(h).squeeze(-1).masked_fill(~mask, float("-inf"))
        weights = scores.softmax(dim=1)  # (B, T); exactly 0 on masked frames
        context = torch.einsum("bt,btd->bd", weights, h)
        return context, weights

    def attention_weights(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """Attention weights (B, T): sum to 1 over each sample's real frames, 0 elsewhere."""
        return self._attend(x, mask)[1]

    def features(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        return self.dense(self._attend(x, mask)[0])


class LSTMDNNClassifier(SequenceClassifier):
    """PLAAN's LSTM-DNN: stacked LSTM (SPEC 128-64-128), the sequence reduced to one
    vector (``pooling``), a dense stack (SPEC 512-1024-128; each Linear + ReLU + dropout),
    linear head. :meth:`features` is the dense stack's output (``feature_dim`` = last
    dense size).

    Per frame (for anomaly detection, where the per-frame loss is the anomaly score):
    :meth:`frame_features` applies the same dense stack to the LSTM output of every
    frame (B, T, feature_dim), :meth:`frame_logits` the head to those (B, T, C). With
    ``pooling="last"``, in eval mode, ``frame_logits`` at a sample's last real frame
    equals ``forward``.

    Args:
        in_features: features per frame F.
        num_classes: output classes.
        hidden_sizes: width of each LSTM layer.
        dense_sizes: width of each dense layer.
        dropout: between LSTM layers, after each dense layer (so also before the head).
        pooling: ``"last"`` (default, Keras' ``return_sequences=False``) or ``"mean"``.
    """

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        *,
        hidden_sizes: Sequence[int] = (128, 64, 128),
        dense_sizes: Sequence[int] = (512, 1024, 128),
        dropout: float = 0.1,
        pooling: str = "last",
    ) -> None:
        super().__init__()
        if not dense_sizes:
            raise ValueError("dense_sizes must name at least one layer")
        self.pooling = _check_pooling(pooling)
        self.encoder = StackedLSTM(in_features, hidden_sizes, dropout=dropout)
        layers: list[nn.Module] = []
        width = self.encoder.output_dim
        for size in dense_sizes:
            layers += [nn.Linear(width, size), nn.ReLU(), nn.Dropout(dropout)]
            width = size
        self.dense = nn.Sequential(*layers)
        self.feature_dim = width
        self.build_head(num_classes, 0.0)  # the dense stack already ends with dropout

    def features(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        mask = full_mask(x, mask)
        return self.dense(pool_sequence(self.encoder(x, mask), mask, self.pooling))

    def frame_features(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """The dense stack applied to every frame's LSTM output (B, T, feature_dim);
        zeros at masked frames."""
        mask = full_mask(x, mask)
        return _zero_masked(self.dense(self.encoder(x, mask)), mask)

    def frame_logits(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """The head applied to every frame's features (B, T, num_classes); values at
        masked frames carry no information (ignore them by ``mask``)."""
        return self.head(self.frame_features(x, mask))
