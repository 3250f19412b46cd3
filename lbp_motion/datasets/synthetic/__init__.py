"""Synthetic pose datasets for tests, demos and benchmarks (no patient data needed)."""

from lbp_motion.datasets.synthetic.tug import ensure_synthetic_tug, generate_tug_dataset

__all__ = ["generate_tug_dataset", "ensure_synthetic_tug"]
from lbp_motion.datasets.synthetic.emopain import ensure_synthetic_emopain, generate_emopain_dataset

__all__ += ["generate_emopain_dataset", "ensure_synthetic_emopain"]
