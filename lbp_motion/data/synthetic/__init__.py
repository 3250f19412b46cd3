"""Synthetic pose datasets for tests, demos and benchmarks (no patient data needed)."""

from .tug import ensure_synthetic_tug, generate_tug_dataset

__all__ = ["generate_tug_dataset", "ensure_synthetic_tug"]
