"""Differential privacy (DP-SGD with Opacus) for any ``lbp`` Trainer, centralised or
federated: see docs/privacy.md.

Switch it on in a config::

    trainer:
      callbacks:
        - class_path: lbp_motion.privacy.DifferentialPrivacy
          init_args: {noise_multiplier: 1.0, max_grad_norm: 1.0, delta: 1.0e-5, unit: subject}

Opacus is imported only when a model is converted or a fit starts (the ``dp`` extra).
"""

from lbp_motion.privacy.accounting import epsilon_of, group_privacy, noise_for_target
from lbp_motion.privacy.callback import DifferentialPrivacy, convert_task
from lbp_motion.privacy.convert import make_private_model

__all__ = [
    "DifferentialPrivacy",
    "convert_task",
    "epsilon_of",
    "group_privacy",
    "make_private_model",
    "noise_for_target",
]
