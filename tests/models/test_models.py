import pytest
import torch

from lbp_motion.models import (
    CNN1DClassifier,
    LSTMClassifier,
    TransformerClassifier,
    WindowStatisticsClassifier,
)

SMALL = {
    TransformerClassifier: dict(d_model=16, num_layers=2, num_heads=4),
    LSTMClassifier: dict(hidden_sizes=(16, 8)),
    CNN1DClassifier: dict(channels=(8, 16)),
    WindowStatisticsClassifier: dict(),
}


@pytest.fixture(params=list(SMALL), ids=lambda c: c.__name__)
def model(request):
    torch.manual_seed(0)
    return request.param(12, 3, **SMALL[request.param]).eval()


def test_output_shapes(model):
    x = torch.randn(5, 30, 12)
    assert model(x).shape == (5, 3)
    assert model.features(x).shape == (5, model.feature_dim)


def test_masked_frames_do_not_change_the_output(model):
    x = torch.randn(4, 30, 12)
    mask = torch.ones(4, 30, dtype=torch.bool)
    mask[:, 20:] = False
    y = model(x, mask)
    x2 = x.clone()
    x2[:, 20:] = 1000.0
    torch.testing.assert_close(model(x2, mask), y, atol=1e-5, rtol=1e-4)
    # ...but real frames do
    x3 = x.clone()
    x3[:, 5] += 3.0
    assert not torch.allclose(model(x3, mask), y, atol=1e-4)


def test_all_masked_sample_gives_finite_logits_and_gradients(model):
    model.train()
    x = torch.randn(3, 30, 12, requires_grad=True)
    mask = torch.ones(3, 30, dtype=torch.bool)
    mask[1] = False
    out = model(x, mask)
    assert torch.isfinite(out).all()
    out.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_transformer_defaults_follow_spec():
    net = TransformerClassifier(51, 3)
    assert len(net.encoder.layers) == 9
    assert net.encoder.layers[0].self_attn.num_heads == 8
    assert net.encoder.layers[0].norm_first is False  # attention, add & norm, FF, add & norm
    with pytest.raises(ValueError, match="divisible"):
        TransformerClassifier(51, 3, d_model=30, num_heads=8)


def test_bidirectional_lstm_doubles_first_layer():
    net = LSTMClassifier(12, 3, hidden_sizes=(16, 8), bidirectional=True)
    assert net.encoder.layers[0].bidirectional and net.encoder.layers[1].input_size == 32
