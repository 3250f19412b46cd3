"""Make a network DP-SGD ready: layers whose per-sample gradients Opacus can compute.

:func:`make_private_model` runs Opacus' ``ModuleValidator.fix`` (``nn.LSTM`` ->
``DPLSTM``, ``nn.MultiheadAttention`` -> ``DPMultiheadAttention``, ``nn.GRU`` ->
``DPGRU``, BatchNorm -> GroupNorm), copying the weights, and then repairs three things
Opacus leaves to the user:

* **State dicts.** Nested in a bigger model, ``DPLSTM`` writes every weight twice
  (``weight_ih_l0`` and ``l0.ih.weight``) and ``DPMultiheadAttention`` writes
  ``qlinear/klinear/vlinear`` instead of ``in_proj_weight``. The converted layers here
  save and load the *original* layer's keys, in the original order, so a DP-trained
  model's checkpoint, its FedAvg state dicts and its Flower parameter arrays are those of
  the plain model (``lbp predict`` needs no DP option to read it).
* **Masks.** ``nn.TransformerEncoderLayer`` hands its key-padding mask to the attention
  as a float mask (0 / -inf); ``DPMultiheadAttention`` needs a boolean one.
* **Fused fast paths.** ``nn.TransformerEncoder(Layer)`` may run a fused kernel that
  reads the attention's ``in_proj_weight`` directly and bypasses its submodules (and
  Opacus' hooks on them). The converted encoders never take it.

For LSTM and attention layers the converted model computes the same function as the
original for the same weights (tests/privacy/test_privacy.py checks it to 1e-5). BatchNorm is
the exception: GroupNorm is a different function, with other state-dict keys, so a
BatchNorm model (``CNN1DClassifier``) trained with DP is a GroupNorm model.
"""

from __future__ import annotations

import logging
import types
from collections import OrderedDict

import torch
from torch import Tensor, nn

log = logging.getLogger(__name__)


def _opacus():
    try:
        import opacus  # noqa: F401
    except ImportError as err:  # pragma: no cover - depends on the installed extras
        from lbp_motion.errors import ConfigError

        raise ConfigError(
            "differential privacy needs Opacus: pip install 'lbp-motion[dp]'"
        ) from err
    from opacus.layers import DPGRU, DPLSTM, DPMultiheadAttention
    from opacus.validators import ModuleValidator

    return ModuleValidator, DPLSTM, DPGRU, DPMultiheadAttention


# -- state-dict alignment ------------------------------------------------------------------
def _mha_keys_from_dp(module: nn.Module, local: dict[str, Tensor]) -> dict[str, Tensor]:
    """DPMultiheadAttention's own keys -> nn.MultiheadAttention's keys."""
    out: dict[str, Tensor] = {}
    if module.kdim == module.embed_dim and module.vdim == module.embed_dim:
        out["in_proj_weight"] = torch.cat(
            [local["qlinear.weight"], local["klinear.weight"], local["vlinear.weight"]]
        )
    else:
        out["q_proj_weight"] = local["qlinear.weight"]
        out["k_proj_weight"] = local["klinear.weight"]
        out["v_proj_weight"] = local["vlinear.weight"]
    if "qlinear.bias" in local:
        out["in_proj_bias"] = torch.cat(
            [local["qlinear.bias"], local["klinear.bias"], local["vlinear.bias"]]
        )
    if "seq_bias_k.bias" in local:
        out["bias_k"] = local["seq_bias_k.bias"].reshape(1, 1, -1)
        out["bias_v"] = local["seq_bias_v.bias"].reshape(1, 1, -1)
    out["out_proj.weight"] = local["out_proj.weight"]
    if "out_proj.bias" in local:
        out["out_proj.bias"] = local["out_proj.bias"]
    return out


def _mha_keys_to_dp(module: nn.Module, local: dict[str, Tensor]) -> dict[str, Tensor]:
    """nn.MultiheadAttention's keys -> DPMultiheadAttention's own keys."""
    out = dict(local)
    if "in_proj_weight" in out:
        q, k, v = out.pop("in_proj_weight").chunk(3, dim=0)
        out.update({"qlinear.weight": q, "klinear.weight": k, "vlinear.weight": v})
    for name in ("q", "k", "v"):
        if f"{name}_proj_weight" in out:
            out[f"{name}linear.weight"] = out.pop(f"{name}_proj_weight")
    if "in_proj_bias" in out:
        q, k, v = out.pop("in_proj_bias").chunk(3, dim=0)
        out.update({"qlinear.bias": q, "klinear.bias": k, "vlinear.bias": v})
    if "bias_k" in out:
        out["seq_bias_k.bias"] = out.pop("bias_k").reshape(-1)
        out["seq_bias_v.bias"] = out.pop("bias_v").reshape(-1)
    return out


def _rnn_keys_from_dp(module: nn.Module, local: dict[str, Tensor]) -> dict[str, Tensor]:
    """DPLSTM/DPGRU write each weight under its nn.LSTM name and its cell's name: keep the former."""
    return {k: v for k, v in local.items() if k not in module.old_to_new}


def _rnn_keys_to_dp(module: nn.Module, local: dict[str, Tensor]) -> dict[str, Tensor]:
    out = dict(local)
    for old, new in module.old_to_new.items():
        if new in out:
            out[old] = out[new]
    return out


def _align_state_dict(module: nn.Module, original_keys: list[str], from_dp, to_dp) -> None:
    """Make ``module`` save and load ``original_keys`` (the replaced layer's keys, in its
    order) instead of its own."""
    module._lbp_original_keys = list(original_keys)
    # Opacus' own key filter of DPLSTM returns a copy, which a parent module ignores: drop it
    for hook_id, hook in list(module._state_dict_hooks.items()):
        if getattr(hook, "__name__", "") == "filter_out_old_keys":
            del module._state_dict_hooks[hook_id]

    def save_hook(mod, state_dict, prefix, local_metadata):
        mine = [k for k in state_dict if k.startswith(prefix)]
        local = OrderedDict((k[len(prefix) :], state_dict.pop(k)) for k in mine)
        converted = from_dp(mod, local)
        for key in mod._lbp_original_keys:  # this module's keys are the latest written: order kept
            state_dict[prefix + key] = converted[key]
        return state_dict

    def load_pre_hook(
        mod, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
    ):
        mine = [k for k in state_dict if k.startswith(prefix)]
        if not any(k[len(prefix) :] in mod._lbp_original_keys for k in mine):
            return  # already in the module's own layout
        local = {k[len(prefix) :]: state_dict.pop(k) for k in mine}
        for key, value in to_dp(mod, local).items():
            state_dict[prefix + key] = value

    module._register_state_dict_hook(save_hook)
    module.register_load_state_dict_pre_hook(load_pre_hook)


# -- packed sequences ------------------------------------------------------------------------
UNSORT_ATTR = "_lbp_unsorted_indices"


def _track_packing(rnn: nn.Module) -> None:
    """Opacus' DP RNNs compute the per-sample gradients of a ``PackedSequence`` in the
    packed (length-sorted) order and never put them back in batch order, so sample i's
    recurrent gradient would be clipped together with another sample's other gradients.
    The RNN's forward (bound to the instance, so copies stay right) marks its parameters
    with the permutation that :func:`restore_sample_order` applies after the backward pass."""
    rnn.forward = types.MethodType(_tracked_rnn_forward, rnn)


def _tracked_rnn_forward(self, input, *args, **kwargs):
    from torch.nn.utils.rnn import PackedSequence

    if self.training and torch.is_grad_enabled():
        unsorted = input.unsorted_indices if isinstance(input, PackedSequence) else None
        if unsorted is not None and torch.equal(
            unsorted, torch.arange(len(unsorted), device=unsorted.device)
        ):
            unsorted = None
        for p in self.parameters():
            setattr(p, UNSORT_ATTR, unsorted)
    return type(self).forward(self, input, *args, **kwargs)


def restore_sample_order(params) -> None:
    """Put the per-sample gradients (``p.grad_sample``) of packed-sequence RNN
    parameters back in batch order; call once after each backward pass."""
    for p in params:
        unsorted = getattr(p, UNSORT_ATTR, None)
        if unsorted is not None and isinstance(getattr(p, "grad_sample", None), Tensor):
            p.grad_sample = p.grad_sample[unsorted.to(p.grad_sample.device)]
        if hasattr(p, UNSORT_ATTR):
            setattr(p, UNSORT_ATTR, None)


# -- layers ----------------------------------------------------------------------------------
def _dp_attention_class():
    _, _, _, DPMultiheadAttention = _opacus()

    class AlignedDPMultiheadAttention(DPMultiheadAttention):
        """Opacus' DPMultiheadAttention with nn.MultiheadAttention's state-dict keys and,
        for ``batch_first=True``, a forward that computes what nn.MultiheadAttention
        computes (Opacus 1.6 mixes heads and frames when it reshapes a batch-first
        output), with float or boolean masks. Opacus' own ``state_dict`` override is
        bypassed (a parent module ignores what it returns)."""

        def state_dict(self, *args, **kwargs):
            return nn.Module.state_dict(self, *args, **kwargs)

        def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
            return nn.Module.load_state_dict(self, state_dict, strict=strict, assign=assign)

        def forward(
            self,
            query,
            key,
            value,
            key_padding_mask=None,
            need_weights=True,
            attn_mask=None,
            is_causal=False,
            average_attn_weights=True,
        ):
            if not self.batch_first:  # Opacus' own forward is right for (T, B, E) inputs
                return super().forward(
                    query,
                    key,
                    value,
                    key_padding_mask=key_padding_mask,
                    need_weights=need_weights,
                    attn_mask=attn_mask,
                    is_causal=bool(is_causal),
                )
            if self.add_bias_kv or self.add_zero_attn:
                raise NotImplementedError(
                    "DP attention: add_bias_kv / add_zero_attn with batch_first=True"
                )
            return _batch_first_attention(
                self,
                query,
                key,
                value,
                key_padding_mask,
                need_weights,
                attn_mask,
                bool(is_causal),
                average_attn_weights,
            )

    return AlignedDPMultiheadAttention


def _batch_first_attention(
    att,
    query,
    key,
    value,
    key_padding_mask,
    need_weights,
    attn_mask,
    is_causal,
    average_attn_weights,
):
    """Multi-head attention on (B, T, E) inputs with the projections of ``att``
    (qlinear, klinear, vlinear, out_proj, each applied to batch-first tensors, so that
    Opacus' per-sample gradients of those Linear layers are right)."""
    b, t, e = query.shape
    s, h = key.shape[1], att.num_heads
    d = e // h
    q = (att.qlinear(query) * d**-0.5).view(b, t, h, d).transpose(1, 2)  # (B, H, T, d)
    k = att.klinear(key).view(b, s, h, d).transpose(1, 2)
    v = att.vlinear(value).view(b, s, h, d).transpose(1, 2)
    scores = q @ k.transpose(-2, -1)  # (B, H, T, S)
    if attn_mask is None and is_causal:
        attn_mask = torch.ones(t, s, dtype=torch.bool, device=query.device).triu(1)
    if attn_mask is not None:
        mask = attn_mask.view(b, h, t, s) if attn_mask.dim() == 3 else attn_mask
        scores = (
            scores.masked_fill(mask, float("-inf")) if mask.dtype == torch.bool else scores + mask
        )
    if key_padding_mask is not None:
        kpm = key_padding_mask[:, None, None, :]
        scores = scores.masked_fill(kpm, float("-inf")) if kpm.dtype == torch.bool else scores + kpm
    weights = att.dropout(scores.softmax(dim=-1))
    out = att.out_proj((weights @ v).transpose(1, 2).reshape(b, t, e))
    if not need_weights:
        return out, None
    return out, weights.mean(dim=1) if average_attn_weights else weights


class _SlowPathEncoderLayer(nn.TransformerEncoderLayer):
    """nn.TransformerEncoderLayer that always runs its submodules (no fused kernel)."""

    def forward(self, src, src_mask=None, src_key_padding_mask=None, is_causal=False):
        src_key_padding_mask = nn.functional._canonical_mask(
            mask=src_key_padding_mask,
            mask_name="src_key_padding_mask",
            other_type=nn.functional._none_or_dtype(src_mask),
            other_name="src_mask",
            target_type=src.dtype,
        )
        src_mask = nn.functional._canonical_mask(
            mask=src_mask,
            mask_name="src_mask",
            other_type=None,
            other_name="",
            target_type=src.dtype,
            check_other=False,
        )
        x = src
        if self.norm_first:
            x = x + self._sa_block(
                self.norm1(x), src_mask, src_key_padding_mask, is_causal=is_causal
            )
            return x + self._ff_block(self.norm2(x))
        x = self.norm1(x + self._sa_block(x, src_mask, src_key_padding_mask, is_causal=is_causal))
        return self.norm2(x + self._ff_block(x))


class _SlowPathEncoder(nn.TransformerEncoder):
    """nn.TransformerEncoder that never converts to nested tensors (no fused kernel)."""

    def forward(self, src, mask=None, src_key_padding_mask=None, is_causal=None):
        output = src
        for layer in self.layers:
            output = layer(
                output,
                src_mask=mask,
                src_key_padding_mask=src_key_padding_mask,
                is_causal=bool(is_causal),
            )
        return self.norm(output) if self.norm is not None else output


def _needs_conversion(module: nn.Module) -> bool:
    ModuleValidator, *_ = _opacus()
    return any(type(m) in ModuleValidator.FIXERS for m in module.modules()) or any(
        type(m) in (nn.TransformerEncoder, nn.TransformerEncoderLayer) for m in module.modules()
    )


def make_private_model(module: nn.Module) -> nn.Module:
    """A copy of ``module`` whose layers Opacus can compute per-sample gradients for
    (see the module docstring); ``module`` itself is unchanged. Returns ``module`` as is
    when nothing needs converting."""
    ModuleValidator, DPLSTM, DPGRU, DPMultiheadAttention = _opacus()
    if not _needs_conversion(module):
        return module
    originals = {
        name: list(m.state_dict().keys())
        for name, m in module.named_modules()
        if isinstance(m, (nn.LSTM, nn.GRU, nn.MultiheadAttention))
    }
    batchnorms = [
        name for name, m in module.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
    ]
    fixed = ModuleValidator.fix(module)
    if batchnorms:
        log.warning(
            "differential privacy: BatchNorm layers %s replaced by GroupNorm (a different function)",
            batchnorms,
        )
    aligned_attention = _dp_attention_class()
    for name, m in fixed.named_modules():
        if type(m) is DPMultiheadAttention:
            m.__class__ = aligned_attention
            _align_state_dict(m, originals[name], _mha_keys_from_dp, _mha_keys_to_dp)
        elif isinstance(m, (DPLSTM, DPGRU)) and name in originals:
            _align_state_dict(m, originals[name], _rnn_keys_from_dp, _rnn_keys_to_dp)
            _track_packing(m)
        elif type(m) is nn.TransformerEncoderLayer:
            m.__class__ = _SlowPathEncoderLayer
        elif type(m) is nn.TransformerEncoder:
            m.__class__ = _SlowPathEncoder
            m.use_nested_tensor = False
    errors = [
        e for e in ModuleValidator.validate(fixed, strict=False) if "training mode" not in str(e)
    ]
    if errors:
        from lbp_motion.errors import ConfigError

        raise ConfigError(
            f"differential privacy: the model has layers Opacus cannot train privately: {errors}"
        )
    return fixed
