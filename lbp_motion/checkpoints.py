"""A fit's checkpoints as lbp writes them, so that a fit resumed from one goes on as if
it had not stopped (``lbp fit --ckpt_path <run>/checkpoints/last.ckpt``; ``lbp sweep``
and ``lbp cv`` resume interrupted fits so):

* :func:`checkpoint_callbacks`: ``best-epochNNN.ckpt`` and ``last.ckpt``, both
  :class:`RunCheckpoint`, which carries the best checkpoint and its score into the
  resumed fit's new run directory;
* :class:`RandomState`: the random generators' state in every checkpoint.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from lbp_motion.atomic import atomic_write


class RunCheckpoint(ModelCheckpoint):
    """Lightning's ModelCheckpoint that carries a resumed fit's checkpoints into its own
    run directory.

    ``lbp fit --ckpt_path <run>/version_0/checkpoints/last.ckpt`` resumes into a new run
    directory (``version_1``), as Lightning's loggers do. Lightning's ModelCheckpoint
    then reloads only ``best_model_path`` (a file of the old folder) and forgets its
    score: the first epoch after the resume counts as the best whatever its score (so
    the test after fit picks the best epoch after the resume, not of the whole fit). This
    one copies the checkpoints it kept by a monitored score (``best_k_models``, the
    best) into its own folder and reloads its state as if it had saved them there: the
    best of the whole fit is tested from the new folder, and the interrupted run's
    folder stays as it was. A callback without a monitor (``last.ckpt``) copies nothing:
    it rewrites its file at the end of the first epoch after the resume.
    """

    def _generate_state_key(self, **kwargs: Any) -> str:
        # the key of Lightning's ModelCheckpoint: checkpoints of either class resume with either
        return f"{ModelCheckpoint.__qualname__}{kwargs!r}"

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        old_dir = state_dict.get("dirpath")
        if self.dirpath is None or old_dir is None or Path(old_dir) == Path(self.dirpath):
            return super().load_state_dict(state_dict)
        new_dir = Path(self.dirpath)

        def moved(path: str | None) -> str:
            if self.monitor is None or not path or not Path(path).is_file():
                return ""
            copy = new_dir / Path(path).name
            if not copy.is_file():  # atomic: a copy cut short leaves no half checkpoint
                atomic_write(copy, lambda tmp: shutil.copyfile(path, tmp))
            return str(copy)

        kept = {moved(p): score for p, score in (state_dict.get("best_k_models") or {}).items()}
        super().load_state_dict(
            {
                **state_dict,
                "dirpath": self.dirpath,
                "best_k_models": {p: s for p, s in kept.items() if p},
                "best_model_path": moved(state_dict.get("best_model_path")),
                "kth_best_model_path": moved(state_dict.get("kth_best_model_path")),
                "last_model_path": moved(state_dict.get("last_model_path")),
            }
        )


class RandomState(pl.Callback):
    """Keeps the random generators' state in every checkpoint of a fit (torch's, on the
    CPU and each GPU, numpy's global one and Python's), so that a fit resumed from one
    draws what the fit would have drawn had it not stopped: the order of the training
    windows and dropout. With :class:`RunCheckpoint`, ``lbp fit --ckpt_path last.ckpt``
    ends with the weights of the uninterrupted fit (tested on the CPU). Augmentation
    does not need it: its draws are keyed by seed, epoch and window
    (:mod:`lbp_motion.transforms.augment`). Plain tensors, numbers and strings only, as
    ``weights_only`` checkpoints require."""

    def state_dict(self) -> dict[str, Any]:
        name, keys, pos, has_gauss, gauss = np.random.get_state()
        version, python_state, python_gauss = random.getstate()
        state = {
            "torch": torch.get_rng_state(),
            "numpy": [
                name,
                torch.from_numpy(keys.astype(np.int64)),
                int(pos),
                int(has_gauss),
                float(gauss),
            ],
            "python": [version, list(python_state), python_gauss],
        }
        if torch.cuda.is_available():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        torch.set_rng_state(state_dict["torch"])
        name, keys, pos, has_gauss, gauss = state_dict["numpy"]
        np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
        version, python_state, python_gauss = state_dict["python"]
        random.setstate((version, tuple(python_state), python_gauss))
        cuda = state_dict.get("cuda")
        if (
            cuda is not None
            and torch.cuda.is_available()
            and len(cuda) == torch.cuda.device_count()
        ):
            torch.cuda.set_rng_state_all(cuda)


def checkpoint_callbacks(dirpath: Path, monitor: str, mode: str) -> list[ModelCheckpoint]:
    """``best-epochNNN.ckpt`` (the best by ``monitor``; the Trainer's checkpoint_callback,
    used by ``ckpt_path="best"``) and ``last.ckpt``, rewritten every epoch for resuming;
    both :class:`RunCheckpoint`, so that a resumed fit keeps the best of the whole fit.

    Two callbacks because Lightning 2.6's ``save_last`` rewrites last.ckpt only in epochs
    that also saved a best checkpoint when it saves at the end of training epochs.
    """
    best = RunCheckpoint(
        dirpath=dirpath,
        filename="best-epoch{epoch:03d}",
        auto_insert_metric_name=False,
        monitor=monitor,
        mode=mode,
        save_top_k=1,
    )
    last = RunCheckpoint(
        dirpath=dirpath,
        filename="last",
        monitor=None,
        save_top_k=1,
        enable_version_counter=False,
    )
    return [best, last]
