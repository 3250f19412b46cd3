"""What every lbp_motion DataModule offers the tasks and the command line.

Tasks never import data readers; they rely on this small, duck-typed interface
(docs/writing-a-task.md):

* ``classes``: class names in label order;
* ``spec``: a plain dict known right after ``__init__`` (no file is read), passed to
  the task as ``data_spec`` by ``lbp``: at least ``num_features`` and ``classes``;
* ``describe()``: ``spec`` plus what is only known after reading the data (e.g. fps),
  stored in checkpoints so that prediction needs nothing but the checkpoint;
* ``class_weights()``: (C,) float tensor, inverse class frequency in the training split;
* ``has_split(name)``: whether ``train``/``val``/``test``/``predict`` has samples;
* ``recording_names``: names indexed by the ``recording`` field of a batch.

For federated training and subject-level privacy a DataModule also provides
``train_subject_info()`` (see below). It never switches its training loader itself:
the training plan (:mod:`lbp_motion.training_plan`) makes per-client or Poisson loaders
of the one ``train_dataloader()`` returns, through ``real_train_dataset()``,
``train_subject_info()`` and ``balance_client()``.

Batches are dicts: ``x`` (B, T, F) float32, ``mask`` (B, T) bool (True = real frame),
``y`` (B,) int64 class index, ``recording`` (B,) int64, ``start`` (B,) int64 first frame.
"""

from __future__ import annotations

import logging
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch

from lbp_motion.datasets.format import DataFormatError
from lbp_motion.errors import ConfigError
from lbp_motion.transforms.augment import AugmentedDataset, Pipeline, build_pipeline
from lbp_motion.transforms.balance import balance_dataset

log = logging.getLogger(__name__)


class MotionDataModule(pl.LightningDataModule):
    """Base class with the shared interface; subclasses fill ``_datasets``."""

    def __init__(self, classes: list[str], batch_size: int = 64, num_workers: int = 0) -> None:
        super().__init__()
        if len(set(classes)) != len(classes) or len(classes) < 2:
            raise ConfigError(
                f"data: classes={classes}; expected at least two distinct class names"
            )
        self.classes = list(classes)
        self.batch_size = batch_size
        self.num_workers = num_workers
        self._datasets: dict[str, torch.utils.data.Dataset] = {}
        self.recording_names: list[str] = []
        #: classes without samples in a split that has samples, e.g. {"test": ["high"]};
        #: set by ``finish_train_split``, warned about, written to metrics.json
        self.absent_classes: dict[str, list[str]] = {}

    @property
    def spec(self) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        return dict(self.spec)

    def has_split(self, name: str) -> bool:
        if not self._datasets:
            self.setup("fit")
        ds = self._datasets.get(name)
        return ds is not None and len(ds) > 0

    def train_labels(self) -> torch.Tensor:
        """(N,) int64 labels of the training samples (after balancing; for class weights)."""
        if "train" not in self._datasets:
            self.setup("fit")
        return torch.from_numpy(self._datasets["train"].window_labels())

    def class_weights(self) -> torch.Tensor:
        """Inverse class frequency over training samples, normalised to mean 1; a class
        without training samples gets weight 0."""
        counts = torch.bincount(self.train_labels(), minlength=len(self.classes)).double()
        weights = torch.where(
            counts > 0, counts.sum() / (len(self.classes) * counts.clamp_min(1)), 0.0
        )
        return weights.float()

    def _loader(self, name: str, shuffle: bool) -> torch.utils.data.DataLoader:
        if not self._datasets:
            self.setup("fit")
        ds = self._datasets[name]
        sampler = ds.sampler(shuffle) if isinstance(ds, AugmentedDataset) else None
        return torch.utils.data.DataLoader(
            ds,
            batch_size=self.batch_size,
            shuffle=shuffle and sampler is None,
            sampler=sampler,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def split_by_site(self, split: str) -> dict[str, torch.utils.data.Dataset]:
        """The samples of ``split`` of each site (clinic), for results per site
        (:mod:`lbp_motion.evaluation.sites`); empty when the data name no sites."""
        return {}

    # -- the training-data protocol of the training plan (lbp_motion.training_plan) --------
    def train_subject_info(self) -> dict[str, Any]:  # pragma: no cover - abstract
        """For the REAL (unbalanced) training samples, aligned with ``real_train_dataset()``:
        ``subject`` (N,) str, ``label`` (N,) str, ``site`` (N,) str or None."""
        raise NotImplementedError(
            f"{type(self).__name__} does not say which subject each training sample belongs to"
        )

    def real_train_dataset(self) -> torch.utils.data.Dataset:
        """The training samples before any balancing."""
        real = getattr(self, "_real_train", None)
        return real if real is not None else self._datasets["train"]

    def balance_client(self, dataset: torch.utils.data.Dataset) -> torch.utils.data.Dataset:
        """Balance one client's data like the training split."""
        if self.balance == "none":
            return dataset
        return balance_dataset(dataset, self.balance, self.balance_seed)

    # -- augmentation ----------------------------------------------------------------------
    augment_pipeline: Pipeline | None = None
    augment_seed: int = 0

    def init_augment(self, augment: list[dict[str, Any]] | None, augment_seed: int) -> None:
        """Validate the ``augment`` config (see :mod:`.augment`); call in ``__init__``
        after ``self.balance`` is set. ``finish_train_split`` then wraps the training
        split (only it) in an :class:`~.augment.AugmentedDataset`."""
        self.augment_pipeline = build_pipeline(augment)
        self.augment_seed = int(augment_seed)
        if self.augment_pipeline is not None and self.balance != "none":
            raise ConfigError(
                f"data: augment and balance={self.balance!r} cannot be combined (balancing stores "
                "normalised features, augmentation works on raw joints); set one of them"
            )

    # -- balancing -----------------------------------------------------------------------
    balance: str = "none"  # subclasses take ``balance`` and ``balance_seed`` arguments
    balance_seed: int = 0
    num_real_train_samples: int = 0

    def finish_train_split(
        self, stage: str | None = None, pooled_train_labels: np.ndarray | None = None
    ) -> None:
        """Call at the end of ``setup``: checks the splits' classes, remembers the real
        training samples (n for federated weighting) and balances the training split if
        configured.

        When fitting (``stage`` ``"fit"`` or None) a training split with fewer than two
        classes is an error. A class without samples in a split that has samples is
        logged as a warning and kept in :attr:`absent_classes`.

        ``pooled_train_labels``: when the training split is one site's part of a larger
        one (``train_sites``), the labels of that larger split; the two-class check is
        made on them (one site of a federation may hold one class; the absent classes
        of the site's split are still warned about).
        """
        self._real_train = self._datasets["train"]
        self.num_real_train_samples = len(self._real_train)
        present: dict[str, set[int]] = {}
        for split in ("train", "val", "test"):
            ds = self._datasets.get(split)
            labels = ds.window_labels() if ds is not None and len(ds) else np.zeros(0, np.int64)
            present[split] = {int(y) for y in np.unique(labels)}
        pooled = (
            present["train"]
            if pooled_train_labels is None
            else {int(y) for y in np.unique(pooled_train_labels)}
        )
        if stage in (None, "fit") and len(pooled) < 2:
            have = [self.classes[i] for i in sorted(pooled)]
            what = "no samples" if not have else f"samples of one class only ({have[0]!r})"
            raise DataFormatError(
                f"data: the training split has {what}; training needs at least two of the classes "
                f"{self.classes} (check the labels, data.classes and the split settings)"
            )
        self.absent_classes = {
            split: [c for i, c in enumerate(self.classes) if i not in have]
            for split, have in present.items()
            if have and len(have) < len(self.classes)
        }
        for split, missing in self.absent_classes.items():
            names = ", ".join(repr(c) for c in missing)
            them = "it" if len(missing) == 1 else "them"
            effect = (
                f"the model never sees {them}"
                if split == "train"
                else f"per-class {split} metrics of {them} are 0 by definition, not a measurement"
            )
            log.warning(
                "data: the %s split has no samples of class%s %s; %s (listed in metrics.json under absent_classes)",
                split,
                "es" if len(missing) > 1 else "",
                names,
                effect,
            )
        if self.balance != "none":
            self._datasets["train"] = balance_dataset(
                self._real_train, self.balance, self.balance_seed
            )
        if self.augment_pipeline is not None:
            self._datasets["train"] = AugmentedDataset(
                self._real_train, self.augment_pipeline, self.augment_seed
            )

    def train_dataloader(self):
        return self._loader("train", shuffle=True)

    def val_dataloader(self):
        return self._loader("val", shuffle=False)

    def test_dataloader(self):
        return self._loader("test", shuffle=False)

    def predict_dataloader(self):
        return self._loader("predict", shuffle=False)
