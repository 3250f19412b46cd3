"""PLAAN's recurrent family: shapes, masking, pooling, attention, per-frame outputs."""

import pytest
import torch

from lbp_motion.models import (
    AttentionLSTMClassifier,
    BiLSTMClassifier,
    LSTMClassifier,
    LSTMDNNClassifier,
)
from lbp_motion.models.recurrent import pool_sequence

F, C = 10, 3
SMALL = {
    "lstm-last": (LSTMClassifier, dict(hidden_sizes=(12, 8), pooling="last")),
    "bilstm": (BiLSTMClassifier, dict(hidden_sizes=(12, 8, 6))),
    "bilstm-single-layer": (BiLSTMClassifier, dict(hidden_sizes=(6,))),
    "attention": (
        AttentionLSTMClassifier,
        dict(hidden_sizes=(12, 8), attention_size=5, dense_size=7),
    ),
    "lstm-dnn": (LSTMDNNClassifier, dict(hidden_sizes=(12, 8), dense_sizes=(16, 8))),
    "lstm-dnn-mean": (
        LSTMDNNClassifier,
        dict(hidden_sizes=(12, 8), dense_sizes=(16, 8), pooling="mean"),
    ),
}


def build(name):
    torch.manual_seed(0)
    cls, kw = SMALL[name]
    return cls(F, C, **kw).eval()


def padded_batch(b=4, t=20, lengths=(20, 14, 9, 1)):
    torch.manual_seed(1)
    x = torch.randn(b, t, F)
    mask = torch.arange(t).expand(b, t) < torch.tensor(lengths).unsqueeze(1)
    return x, mask


@pytest.mark.parametrize("name", list(SMALL))
def test_shapes_and_padding_invariance(name):
    net = build(name)
    x, mask = padded_batch()
    out, feats = net(x, mask), net.features(x, mask)
    assert out.shape == (4, C) and feats.shape == (4, net.feature_dim)
    x2 = x.clone()
    x2[~mask] = 1e3  # change every padded frame
    torch.testing.assert_close(net(x2, mask), out, atol=1e-5, rtol=1e-4)
    # the same samples without any padding give the same output
    for i, n in enumerate((20, 14, 9, 1)):
        torch.testing.assert_close(net(x[i : i + 1, :n]), out[i : i + 1], atol=1e-5, rtol=1e-4)
    # a real frame does change it
    x3 = x.clone()
    x3[:, 0] += 3.0
    assert not torch.allclose(net(x3, mask), out, atol=1e-4)


@pytest.mark.parametrize("name", list(SMALL))
def test_all_masked_sample_is_finite(name):
    net = build(name).train()
    x = torch.randn(2, 8, F, requires_grad=True)
    mask = torch.zeros(2, 8, dtype=torch.bool)
    mask[0, :5] = True
    out = net(x, mask)
    assert torch.isfinite(out).all()
    out.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in net.parameters() if p.grad is not None)


def test_spec_defaults():
    bi = BiLSTMClassifier(78, 3)
    sizes = [(layer.hidden_size, layer.bidirectional) for layer in bi.encoder.layers]
    assert (
        sizes == [(1024, True), (512, False), (256, False)]
        and bi.encoder.layers[1].input_size == 2048
    )
    assert bi.pooling == "last" and bi.feature_dim == 256
    att = AttentionLSTMClassifier(78, 2)
    assert [layer.hidden_size for layer in att.encoder.layers] == [128, 64, 128]
    assert att.attention[0].out_features == 64 and att.feature_dim == 64
    dnn = LSTMDNNClassifier(78, 2)
    assert [layer.hidden_size for layer in dnn.encoder.layers] == [128, 64, 128]
    assert [m.out_features for m in dnn.dense if isinstance(m, torch.nn.Linear)] == [512, 1024, 128]
    assert dnn.pooling == "last" and dnn.feature_dim == 128
    lstm = LSTMClassifier(78, 2)  # TUG baseline default unchanged
    assert [layer.hidden_size for layer in lstm.encoder.layers] == [
        128,
        64,
        128,
    ] and lstm.pooling == "mean"
    with pytest.raises(ValueError, match="pooling"):
        LSTMDNNClassifier(78, 2, pooling="max")


def test_last_pooling_reads_last_real_frame_and_final_backward_state():
    h = torch.arange(2 * 4 * 4, dtype=torch.float).reshape(2, 4, 4)
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 1]], dtype=torch.bool)
    torch.testing.assert_close(pool_sequence(h, mask, "last"), h[[0, 1], [2, 3]])
    bi = pool_sequence(h, mask, "last", bidirectional=True)
    torch.testing.assert_close(bi[:, :2], h[[0, 1], [2, 3], :2])
    torch.testing.assert_close(bi[:, 2:], h[:, 0, 2:])
    # a single bidirectional layer: the pooled vector is LSTM's final (h_n) of each direction
    net = build("bilstm-single-layer")
    x, mask = padded_batch()
    lengths = mask.sum(1)
    packed = torch.nn.utils.rnn.pack_padded_sequence(
        x, lengths, batch_first=True, enforce_sorted=False
    )
    _, (h_n, _) = net.encoder.layers[0](packed)
    torch.testing.assert_close(net.features(x, mask), torch.cat([h_n[0], h_n[1]], dim=1))


def test_attention_weights_sum_to_one_over_real_frames():
    net = build("attention")
    x, mask = padded_batch()
    mask[0, 3] = False  # an interior masked frame is not attended to either
    w = net.attention_weights(x, mask)
    assert w.shape == mask.shape
    assert (w[~mask] == 0).all() and (w[mask] > 0).all()
    torch.testing.assert_close(w.sum(1), torch.ones(4))


def test_lstm_dnn_frame_outputs():
    net = build("lstm-dnn")
    x, mask = padded_batch()
    frames = net.frame_features(x, mask)
    logits = net.frame_logits(x, mask)
    assert frames.shape == (4, 20, net.feature_dim) and logits.shape == (4, 20, C)
    assert (frames[~mask] == 0).all()
    last = mask.sum(1) - 1
    torch.testing.assert_close(logits[torch.arange(4), last], net(x, mask))
    x2 = x.clone()
    x2[~mask] = -50.0
    torch.testing.assert_close(net.frame_logits(x2, mask)[mask], logits[mask])


def test_lstm_frame_features_average_to_mean_pooled_features():
    net = LSTMClassifier(F, C, hidden_sizes=(8, 6)).eval()
    x, mask = padded_batch()
    frames = net.frame_features(x, mask)
    mean = frames.sum(1) / mask.sum(1, keepdim=True)
    torch.testing.assert_close(mean, net.features(x, mask))
    assert net.frame_logits(x, mask).shape == (4, 20, C)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_the_unrolled_recurrence_equals_the_default_one(name):
    """What vectorised federated training runs (vmap cannot batch PyTorch's LSTM kernels):
    the same outputs and gradients, with padding at the end and frames missing inside."""
    from lbp_motion.models.common import unrolled_recurrence

    cls, kwargs = SMALL[name]
    torch.manual_seed(0)
    model = cls(F, C, dropout=0.0, **kwargs)
    x = torch.randn(4, 9, F)
    mask = torch.ones(4, 9, dtype=torch.bool)
    mask[1, 5:] = False  # shorter
    mask[2, 2] = False  # a missing frame inside
    mask[3, 1:] = False  # one frame
    default = model(x, mask)
    grads = torch.autograd.grad(default.square().sum(), list(model.parameters()))
    with unrolled_recurrence():
        unrolled = model(x, mask)
    torch.testing.assert_close(unrolled, default, atol=1e-5, rtol=1e-4)
    with unrolled_recurrence():  # frame outputs too: zeros past each length
        frames = model.encoder(x, mask)
    torch.testing.assert_close(frames, model.encoder(x, mask), atol=1e-5, rtol=1e-4)
    again = torch.autograd.grad(unrolled.square().sum(), list(model.parameters()))
    for a, b in zip(again, grads):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("bidirectional_first", [False, True])
def test_the_stacked_lstm_gives_what_packed_sequences_give(bidirectional_first):
    """Each layer runs over the padded batch (the backward direction over each sequence
    reversed within its length) instead of packed sequences: the same outputs and
    gradients, zeros past each length, whatever the padding holds."""
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    from lbp_motion.models.recurrent import StackedLSTM

    torch.manual_seed(0)
    stack = StackedLSTM(F, (8, 6, 5), bidirectional_first=bidirectional_first)
    x, mask = padded_batch()
    lengths = mask.sum(1)
    x = x.masked_fill(~mask.unsqueeze(-1), 7.0).requires_grad_()  # padding is not zeros

    def packed(h):
        for lstm in stack.layers:
            seq = pack_padded_sequence(h, lengths, batch_first=True, enforce_sorted=False)
            h = pad_packed_sequence(lstm(seq)[0], batch_first=True, total_length=20)[0]
        return h

    ours, reference = stack(x, mask), packed(x)
    assert ours.shape == (4, 20, 5) and (ours[~mask] == 0).all()
    torch.testing.assert_close(ours, reference, atol=1e-6, rtol=1e-5)
    weights = (torch.arange(20.0) + 1).view(1, 20, 1)  # every frame's output counts
    wrt = [x, *stack.parameters()]
    for a, b in zip(
        torch.autograd.grad((ours * weights).square().sum(), wrt),
        torch.autograd.grad((reference * weights).square().sum(), wrt),
    ):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
