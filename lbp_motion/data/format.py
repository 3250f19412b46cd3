"""The on-disk format of pose sequences (``format_version`` 1); see docs/data-format.md.

A dataset is a folder holding

* ``labels.csv`` with columns ``recording``, ``subject``, ``label`` (a class name) and an
  optional ``site``; one row per recording;
* one ``<recording>.npz`` per row (``numpy.savez``, loadable with ``allow_pickle=False``):

  - ``keypoints``: float32 ``(T, J, 3)``: x, y in pixels (origin top-left, y down) and a
    confidence in [0, 1]; a missing joint is all zeros (confidence 0). NaN is an error.
  - ``layout``: the joint layout's name, e.g. ``"coco17"`` (see :mod:`.layouts`).
  - ``fps``: frames per second (float).
  - ``image_size``: ``(width, height)`` in pixels.
  - ``format_version``: 1 (optional on read; written always).
  - any extra keys (e.g. ``backend``, ``model``) are kept as metadata.
"""

from __future__ import annotations

import csv
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import LbpError
from .layouts import get_layout

FORMAT_VERSION = 1
LABELS_FILE = "labels.csv"
REQUIRED_COLUMNS = ("recording", "subject", "label")


class DataFormatError(LbpError):
    """A dataset file breaks the documented format; the message names file and field."""


@dataclass
class LabelRow:
    """One row of ``labels.csv``."""

    recording: str
    subject: str
    label: str
    site: str | None = None


@dataclass
class Recording:
    """One pose sequence as read from ``<recording>.npz``.

    ``keypoints``: (T, J, 3) float32, x/y in pixels and confidence in [0, 1].
    """

    name: str
    keypoints: np.ndarray
    layout: str
    fps: float
    image_size: tuple[int, int]
    meta: dict[str, object] = field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        return int(self.keypoints.shape[0])


def _atomic_write(path: Path, write) -> None:
    """Call ``write(tmp_path)`` then rename over ``path``: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_recording(
    path: str | Path,
    keypoints: np.ndarray,
    *,
    layout: str,
    fps: float,
    image_size: tuple[int, int],
    **meta: object,
) -> Path:
    """Write one recording atomically; validates it first (see :func:`validate_keypoints`)."""
    path = Path(path)
    keypoints = np.asarray(keypoints, dtype=np.float32)
    try:
        get_layout(layout)
    except ValueError as err:
        raise DataFormatError(f"{path}: field 'layout': {err}") from None
    validate_keypoints(keypoints, source=str(path), num_joints=get_layout(layout).num_joints)
    arrays = {
        "keypoints": keypoints,
        "layout": np.asarray(layout),
        "fps": np.asarray(float(fps)),
        "image_size": np.asarray(image_size, dtype=np.int64),
        "format_version": np.asarray(FORMAT_VERSION),
    }
    for key, value in meta.items():
        arrays[key] = np.asarray(value)

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)

    _atomic_write(path, write)
    return path


def validate_keypoints(keypoints: np.ndarray, *, source: str, num_joints: int | None = None) -> None:
    """Raise :class:`DataFormatError` naming ``source`` unless ``keypoints`` is a valid
    (T, J, 3) float32 array with finite values and confidences in [0, 1]."""
    if keypoints.ndim != 3 or keypoints.shape[-1] != 3:
        raise DataFormatError(
            f"{source}: field 'keypoints' has shape {keypoints.shape}; expected (T, J, 3)"
        )
    if num_joints is not None and keypoints.shape[1] != num_joints:
        raise DataFormatError(
            f"{source}: field 'keypoints' has {keypoints.shape[1]} joints; its layout has {num_joints}"
        )
    if keypoints.dtype != np.float32:
        raise DataFormatError(f"{source}: field 'keypoints' has dtype {keypoints.dtype}; expected float32")
    bad = ~np.isfinite(keypoints)
    if bad.any():
        t, j, c = np.argwhere(bad)[0]
        raise DataFormatError(
            f"{source}: field 'keypoints' holds {int(bad.sum())} NaN/inf values "
            f"(first at frame {t}, joint {j}, channel {c}); mark missing joints with zeros and confidence 0"
        )
    conf = keypoints[..., 2]
    if conf.size and (conf.min() < 0 or conf.max() > 1):
        raise DataFormatError(
            f"{source}: field 'keypoints' has confidences in [{conf.min():g}, {conf.max():g}]; expected [0, 1]"
        )


def read_recording(path: str | Path, *, mmap: bool = False) -> Recording:
    """Read and validate ``<recording>.npz``; errors name the file and the field."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"{path}: file not found")
    try:
        with np.load(path, allow_pickle=False) as npz:
            data = {k: npz[k] for k in npz.files}
    except Exception as err:  # zipfile/pickle errors from a corrupt file
        raise DataFormatError(f"{path}: not a readable .npz file ({err})") from None
    for key in ("keypoints", "layout", "fps", "image_size"):
        if key not in data:
            raise DataFormatError(f"{path}: field {key!r} is missing; it has {sorted(data)}")
    version = int(data.pop("format_version", FORMAT_VERSION))
    if version > FORMAT_VERSION:
        raise DataFormatError(
            f"{path}: field 'format_version' is {version}; this lbp_motion reads up to {FORMAT_VERSION}"
        )
    layout = str(data.pop("layout"))
    try:
        num_joints = get_layout(layout).num_joints
    except ValueError as err:
        raise DataFormatError(f"{path}: field 'layout': {err}") from None
    keypoints = data.pop("keypoints")
    validate_keypoints(keypoints, source=str(path), num_joints=num_joints)
    fps = float(data.pop("fps"))
    if not fps > 0:
        raise DataFormatError(f"{path}: field 'fps' is {fps}; expected a positive number")
    size = tuple(int(v) for v in np.asarray(data.pop("image_size")).reshape(-1))
    if len(size) != 2 or min(size) <= 0:
        raise DataFormatError(f"{path}: field 'image_size' is {size}; expected (width, height) > 0")
    meta = {k: (v.item() if v.ndim == 0 else v) for k, v in data.items()}
    return Recording(path.stem, keypoints, layout, fps, (size[0], size[1]), meta)


def read_labels(root: str | Path) -> list[LabelRow]:
    """Read ``root/labels.csv``; errors name the file, the row and the field."""
    root = Path(root)
    if not root.is_dir():
        raise DataFormatError(f"{root}: data folder not found")
    path = root / LABELS_FILE
    if not path.is_file():
        raise DataFormatError(f"{path}: file not found; a dataset folder needs {LABELS_FILE}")
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        columns = reader.fieldnames or []
        missing = [c for c in REQUIRED_COLUMNS if c not in columns]
        if missing:
            raise DataFormatError(f"{path}: columns {missing} are missing; it has {columns}")
        rows, seen = [], set()
        for line, rec in enumerate(reader, start=2):
            for col in REQUIRED_COLUMNS:
                if not (rec.get(col) or "").strip():
                    raise DataFormatError(f"{path}, line {line}: field {col!r} is empty")
            name = rec["recording"].strip()
            if name in seen:
                raise DataFormatError(f"{path}, line {line}: recording {name!r} appears twice")
            seen.add(name)
            site = (rec.get("site") or "").strip() or None
            rows.append(LabelRow(name, rec["subject"].strip(), rec["label"].strip(), site))
    if not rows:
        raise DataFormatError(f"{path}: no recordings listed")
    return rows


def write_labels(root: str | Path, rows: list[LabelRow]) -> Path:
    """Write ``root/labels.csv`` atomically (with a ``site`` column if any row has one)."""
    path = Path(root) / LABELS_FILE
    with_site = any(r.site is not None for r in rows)
    columns = list(REQUIRED_COLUMNS) + (["site"] if with_site else [])

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(columns)
            for r in rows:
                writer.writerow([r.recording, r.subject, r.label] + ([r.site or ""] if with_site else []))

    _atomic_write(path, write)
    return path
