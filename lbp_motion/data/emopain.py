"""EmoPain 2020 challenge body-movement data: reader, writer, segmentation, DataModule.

The file format (docs/emopain.md): one file per participant and exercise level, named
``<P|C><digits><N|D>`` (``P113N.mat``: patient 113, normal level; ``C012D.csv``: control
12, difficult level), holding a T x 78 matrix, one row per frame at 60 Hz:

=======  ======================================================================
columns  meaning (1-based, as in MATLAB)
=======  ======================================================================
1-22     X of joints 0-21 (blocked: all X, then all Y, then all Z)
23-44    Y of joints 0-21
45-66    Z of joints 0-21
67-70    sEMG: right / left lumbar paraspinal, right / left upper trapezius
71       exercise type 0-8 (:data:`EXERCISES`)
72       pain level: 0 healthy / no pain, 1 low, 2 high, -1 not reported
73       protective behaviour 0/1
74-78    protective behaviour types 0/1 (:data:`PROTECTIVE_TYPES`)
=======  ======================================================================

``.mat`` files (MATLAB v5/v7, ``scipy.io.loadmat``) keep the matrix under the key
``data``. ``.csv`` files hold the same 78 numbers per line, comma-separated, with an
optional header line (a first line none of whose fields is a number).

Segmentation (PLAAN): a recording is cut into *exercise instances* (maximal runs of
frames with one exercise type; for the pain task frames with pain -1 are dropped
first, so a run that contains them is split in two). Each instance is cut into
fixed-length samples that start at ``0, stride, 2*stride, ...``; the last sample is the
first one that reaches the instance's end and is zero-padded past it (``mask`` False
on padded frames). An instance shorter than one sample gives one padded sample. A
sample's label is the vote of its real frames (:func:`majority_label`).
"""

from __future__ import annotations

import csv
import io
import logging
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from ..atomic import atomic_write, write_text
from ..errors import ConfigError
from .balance import BalanceMethod
from .base import MotionDataModule
from .format import DataFormatError
from .layouts import EMOPAIN22
from .splits import loso_folds, read_split_file, split_subjects

log = logging.getLogger(__name__)

__all__ = [
    "ANGLE_TRIPLETS",
    "EMG_CHANNELS",
    "EXERCISES",
    "EmoPainDataModule",
    "EmoPainRecording",
    "EmoPainSegmentDataset",
    "JOINT_EDGES",
    "JOINT_NAMES",
    "NUM_COLUMNS",
    "NUM_JOINTS",
    "PAIN_CLASSES",
    "PROTECTIVE_CLASSES",
    "PROTECTIVE_TYPES",
    "build_emopain_matrix",
    "column_meaning",
    "compute_joint_angles",
    "compute_joint_energies",
    "exercise_instances",
    "feature_names",
    "frame_label_shares",
    "list_emopain_files",
    "loso_folds",  # from .splits, kept here for the documented import path
    "majority_label",
    "parse_emopain_name",
    "read_emopain",
    "read_emopain_matrix",
    "segment_starts",
    "write_emopain_csv",
    "write_emopain_mat",
    "validate_emopain_matrix",
    "frame_features",
]

# --------------------------------------------------------------------------------------
# the format as data
# --------------------------------------------------------------------------------------

NUM_JOINTS = 22
NUM_COLUMNS = 78
#: 0-based column slices / indices of the T x 78 matrix.
COL_X, COL_Y, COL_Z = slice(0, 22), slice(22, 44), slice(44, 66)
COL_EMG = slice(66, 70)
COL_EXERCISE, COL_PAIN, COL_PROTECTIVE = 70, 71, 72
COL_TYPES = slice(73, 78)

#: Exercise types of column 71, in label order (value = index); the ``aux_classes``.
EXERCISES = (
    "other",
    "one_leg_stand",
    "reach_forward",
    "bend",
    "sit_to_stand",
    "stand_to_sit",
    "sitting_still",
    "standing_still",
    "walking",
)
EMG_CHANNELS = (
    "right_lumbar_paraspinal",
    "left_lumbar_paraspinal",
    "right_upper_trapezius",
    "left_upper_trapezius",
)
#: Protective behaviour types of columns 74-78, in column order.
PROTECTIVE_TYPES = (
    "guarding_stiffness",
    "hesitation",
    "support_bracing",
    "abrupt_motion",
    "rubbing_stimulation",
)
PAIN_CLASSES = ("no_pain", "low", "high")
PROTECTIVE_CLASSES = ("non_protective", "protective")

#: The 22-joint graph of SPEC section 2, 0-based, and the names the synthetic generator
#: gives the joints (the challenge does not publish them; the reader and the features
#: use indices only; sides are an assumption): one definition, layouts.EMOPAIN22.
JOINT_EDGES: tuple[tuple[int, int], ...] = EMOPAIN22.edges
JOINT_NAMES: tuple[str, ...] = tuple(EMOPAIN22.joints)


def _angle_triplets(
    edges: Iterable[tuple[int, int]], num_joints: int
) -> tuple[tuple[int, int, int], ...]:
    """``(a, j, b)`` for every pair of neighbours ``a < b`` of every joint ``j`` with two
    or more neighbours, ordered by ``j`` then ``(a, b)``."""
    neighbours: list[set[int]] = [set() for _ in range(num_joints)]
    for a, b in edges:
        neighbours[a].add(b)
        neighbours[b].add(a)
    out = []
    for j in range(num_joints):
        nb = sorted(neighbours[j])
        out += [(a, j, b) for i, a in enumerate(nb) for b in nb[i + 1 :]]
    return tuple(out)


#: The angles of ``joint_angles=True``: at each joint with 2+ neighbours, one angle per
#: pair of neighbours (15 joints with two neighbours give one each, joint 0 with three
#: gives 3, joint 8 with four gives 6: 24 angles).
ANGLE_TRIPLETS = _angle_triplets(JOINT_EDGES, NUM_JOINTS)

_TYPE_TEXT = (
    "guarding/stiffness",
    "hesitation",
    "support/bracing",
    "abrupt motion",
    "rubbing/stimulation",
)
_NAME_RE = re.compile(r"^(?P<group>[PC])(?P<number>\d+)(?P<level>[ND])$")
_SUFFIXES = (".mat", ".csv")


def column_meaning(column: int) -> str:
    """What the 1-based ``column`` of the 78-column matrix holds, e.g. ``'Y of joint 3'``."""
    if 1 <= column <= 22:
        return f"X of joint {column - 1}"
    if 23 <= column <= 44:
        return f"Y of joint {column - 23}"
    if 45 <= column <= 66:
        return f"Z of joint {column - 45}"
    if 67 <= column <= 70:
        return "sEMG " + EMG_CHANNELS[column - 67].replace("_", " ")
    if column == 71:
        return "exercise type"
    if column == 72:
        return "pain level"
    if column == 73:
        return "protective behaviour"
    if 74 <= column <= 78:
        return "protective type " + _TYPE_TEXT[column - 74]
    raise ValueError(f"column {column} is outside 1..{NUM_COLUMNS}")


#: Allowed values of the label columns (0-based column -> (values, text)).
_LABEL_RANGES: dict[int, tuple[tuple[int, ...], str]] = {
    COL_EXERCISE: (tuple(range(9)), "an integer 0..8"),
    COL_PAIN: ((-1, 0, 1, 2), "-1 (not reported), 0, 1 or 2"),
    COL_PROTECTIVE: ((0, 1), "0 or 1"),
    **{c: ((0, 1), "0 or 1") for c in range(73, 78)},
}


# --------------------------------------------------------------------------------------
# reading and writing
# --------------------------------------------------------------------------------------


@dataclass
class EmoPainRecording:
    """One EmoPain file as read by :func:`read_emopain`.

    Attributes:
        name: file name without suffix, e.g. ``"P113N"``.
        path: the file.
        subject: participant id, e.g. ``"P113"`` (group letter + number).
        group: ``"patient"`` (P) or ``"control"`` (C).
        level: ``"normal"`` (N) or ``"difficult"`` (D).
        coords: (T, 22, 3) float32, X/Y/Z of the 22 joints in the file's units.
        emg: (T, 4) float32 sEMG (:data:`EMG_CHANNELS`).
        exercise: (T,) int64 exercise type 0..8 (:data:`EXERCISES`).
        pain: (T,) int64 pain level -1 (not reported), 0, 1, 2.
        protective: (T,) int64 protective behaviour 0/1.
        protective_types: (T, 5) int64 0/1 (:data:`PROTECTIVE_TYPES`).
    """

    name: str
    path: Path
    subject: str
    group: str
    level: str
    coords: np.ndarray
    emg: np.ndarray
    exercise: np.ndarray
    pain: np.ndarray
    protective: np.ndarray
    protective_types: np.ndarray

    @property
    def num_frames(self) -> int:
        return int(self.coords.shape[0])


def parse_emopain_name(name: str | Path) -> tuple[str, str, str]:
    """``(subject, group, level)`` from a file name or stem such as ``P113N.mat``:
    ``("P113", "patient", "normal")``. A name that is not ``<P|C><digits><N|D>`` raises
    :class:`DataFormatError` naming it."""
    stem = Path(name).stem if Path(name).suffix.lower() in _SUFFIXES else Path(name).name
    m = _NAME_RE.match(stem)
    if m is None:
        raise DataFormatError(
            f"{name}: file name {stem!r} is not <P|C><digits><N|D> "
            "(P patient / C control, N normal / D difficult level, e.g. P113N.mat)"
        )
    group = "patient" if m["group"] == "P" else "control"
    level = "normal" if m["level"] == "N" else "difficult"
    return m["group"] + m["number"], group, level


def build_emopain_matrix(
    coords: np.ndarray,
    emg: np.ndarray,
    exercise: np.ndarray,
    pain: np.ndarray,
    protective: np.ndarray,
    protective_types: np.ndarray,
) -> np.ndarray:
    """Assemble the (T, 78) float64 matrix of the format (the inverse of :func:`read_emopain`).

    Args: coords (T, 22, 3); emg (T, 4); exercise, pain, protective (T,);
    protective_types (T, 5). X/Y/Z are written blocked (columns 1-22, 23-44, 45-66).
    """
    coords = np.asarray(coords, dtype=np.float64)
    t = coords.shape[0]
    if coords.shape != (t, NUM_JOINTS, 3):
        raise ValueError(f"coords has shape {coords.shape}; expected (T, {NUM_JOINTS}, 3)")
    out = np.empty((t, NUM_COLUMNS), dtype=np.float64)
    out[:, COL_X] = coords[:, :, 0]
    out[:, COL_Y] = coords[:, :, 1]
    out[:, COL_Z] = coords[:, :, 2]
    out[:, COL_EMG] = np.asarray(emg, dtype=np.float64).reshape(t, 4)
    out[:, COL_EXERCISE] = np.asarray(exercise).reshape(t)
    out[:, COL_PAIN] = np.asarray(pain).reshape(t)
    out[:, COL_PROTECTIVE] = np.asarray(protective).reshape(t)
    out[:, COL_TYPES] = np.asarray(protective_types).reshape(t, 5)
    return out


def validate_emopain_matrix(
    data: np.ndarray, source: str | Path, *, lines: Sequence[int] | None = None
) -> None:
    """Raise :class:`DataFormatError` unless ``data`` is a finite (T, 78) matrix with
    labels in range. Messages name ``source``, the 1-based column with its meaning and
    the 1-based row (``lines``: for CSV files, the file line of each row, also named)."""

    def where(row0: int) -> str:
        return f"row {row0 + 1}" + (f" (line {lines[row0]})" if lines is not None else "")

    if data.ndim != 2:
        raise DataFormatError(
            f"{source}: field 'data' has shape {data.shape}; expected (T, {NUM_COLUMNS})"
        )
    if data.shape[1] != NUM_COLUMNS:
        raise DataFormatError(
            f"{source}: field 'data' has {data.shape[1]} columns (shape {data.shape}); expected {NUM_COLUMNS} "
            "(22 X, 22 Y, 22 Z, 4 sEMG, exercise, pain, protective, 5 protective types)"
        )
    if data.shape[0] == 0:
        raise DataFormatError(f"{source}: field 'data' has no rows")
    bad = ~np.isfinite(data)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise DataFormatError(
            f"{source}: column {c + 1} ({column_meaning(c + 1)}) is {data[r, c]} at {where(r)}; "
            f"NaN and inf are not allowed ({int(bad.sum())} NaN/inf values in the file)"
        )
    for c, (allowed, text) in _LABEL_RANGES.items():
        col = data[:, c]
        bad = ~np.isin(col, allowed)
        if bad.any():
            r = int(np.flatnonzero(bad)[0])
            raise DataFormatError(
                f"{source}: column {c + 1} ({column_meaning(c + 1)}) is {col[r]:g} at {where(r)}; expected {text}"
            )


def _read_mat(path: Path) -> np.ndarray:
    import scipy.io

    try:
        mat = scipy.io.loadmat(str(path))
    except NotImplementedError:  # MATLAB v7.3 (HDF5) files
        raise DataFormatError(
            f"{path}: a MATLAB v7.3 (HDF5) file, which is not supported; re-save it with save(..., '-v7')"
        ) from None
    except Exception as err:  # noqa: BLE001 - any parse error of a corrupt file
        raise DataFormatError(f"{path}: not a readable MATLAB .mat file ({err})") from None
    if "data" not in mat:
        keys = sorted(k for k in mat if not k.startswith("__"))
        raise DataFormatError(f"{path}: field 'data' is missing; it has {keys}")
    data = np.asarray(mat["data"])
    if data.dtype.kind not in "biuf":
        raise DataFormatError(
            f"{path}: field 'data' has dtype {data.dtype}; expected a numeric matrix"
        )
    return data.astype(np.float64)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _read_csv(path: Path) -> tuple[np.ndarray, list[int]]:
    """The matrix and the file line (1-based) of each row. Blank lines are skipped; the
    first line is a header when none of its fields is a number."""
    with open(path, newline="") as fh:
        raw = list(csv.reader(fh))
    lines = [i + 1 for i, r in enumerate(raw) if any(cell.strip() for cell in r)]
    rows = [raw[i - 1] for i in lines]
    if rows and not any(_is_number(cell) for cell in rows[0]):  # a header
        if len(rows[0]) != NUM_COLUMNS:
            raise DataFormatError(
                f"{path}: the header (line {lines[0]}) has {len(rows[0])} columns; expected {NUM_COLUMNS}"
            )
        rows, lines = rows[1:], lines[1:]
    data = np.empty((len(rows), NUM_COLUMNS), dtype=np.float64)
    for r, (row, line) in enumerate(zip(rows, lines, strict=True)):
        if len(row) != NUM_COLUMNS:
            raise DataFormatError(
                f"{path}: row {r + 1} (line {line}) has {len(row)} columns; expected {NUM_COLUMNS}"
            )
        try:
            data[r] = [float(cell) for cell in row]
        except ValueError:
            c = next(c for c, cell in enumerate(row) if not _is_number(cell))
            raise DataFormatError(
                f"{path}: column {c + 1} ({column_meaning(c + 1)}) is {row[c]!r} at row {r + 1} "
                f"(line {line}); expected a number"
            ) from None
    return data, lines


def read_emopain_matrix(path: str | Path) -> np.ndarray:
    """Read and validate the (T, 78) float64 matrix of a ``.mat`` or ``.csv`` file
    (see :func:`validate_emopain_matrix` for the errors)."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"{path}: file not found")
    suffix = path.suffix.lower()
    if suffix == ".mat":
        data, lines = _read_mat(path), None
    elif suffix == ".csv":
        data, lines = _read_csv(path)
    else:
        raise DataFormatError(f"{path}: unknown file type {path.suffix!r}; expected .mat or .csv")
    validate_emopain_matrix(data, path, lines=lines)
    return data


def read_emopain(path: str | Path) -> EmoPainRecording:
    """Read one EmoPain body-movement file (``.mat`` with key ``data`` or ``.csv``).

    The name must be ``<P|C><digits><N|D>`` (checked first). Every problem raises
    :class:`DataFormatError` with one sentence naming the file and, for values, the
    1-based column (with its meaning) and row: wrong number of columns, non-numeric
    values (CSV), NaN/inf, labels out of range, missing key ``data``.
    """
    path = Path(path)
    subject, group, level = parse_emopain_name(path)
    data = read_emopain_matrix(path)
    coords = np.stack([data[:, COL_X], data[:, COL_Y], data[:, COL_Z]], axis=-1).astype(np.float32)
    return EmoPainRecording(
        name=path.stem,
        path=path,
        subject=subject,
        group=group,
        level=level,
        coords=coords,
        emg=data[:, COL_EMG].astype(np.float32),
        exercise=data[:, COL_EXERCISE].astype(np.int64),
        pain=data[:, COL_PAIN].astype(np.int64),
        protective=data[:, COL_PROTECTIVE].astype(np.int64),
        protective_types=data[:, COL_TYPES].astype(np.int64),
    )


def write_emopain_mat(
    path: str | Path, matrix: np.ndarray, *, validate: bool = True, compress: bool = False
) -> Path:
    """Write ``matrix`` (T, 78) as a MATLAB v5 ``.mat`` file with key ``data`` (float64),
    atomically. ``validate=False`` writes anything 2-D (tests use it for broken files)."""
    path = Path(path)
    data = np.asarray(matrix, dtype=np.float64)
    if validate:
        validate_emopain_matrix(data, path)
    import scipy.io

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            scipy.io.savemat(fh, {"data": data}, do_compression=compress)

    atomic_write(path, write)
    return path


#: Header written by :func:`write_emopain_csv`.
CSV_HEADER = (
    [f"x{j}" for j in range(NUM_JOINTS)]
    + [f"y{j}" for j in range(NUM_JOINTS)]
    + [f"z{j}" for j in range(NUM_JOINTS)]
    + [f"emg_{c}" for c in EMG_CHANNELS]
    + ["exercise", "pain", "protective"]
    + [f"type_{t}" for t in PROTECTIVE_TYPES]
)


def _fmt(v: float, *, integer: bool) -> str:
    if integer and np.isfinite(v) and v == int(v):
        return str(int(v))
    return f"{v:.17g}"


def write_emopain_csv(
    path: str | Path, matrix: np.ndarray, *, header: bool = True, validate: bool = True
) -> Path:
    """Write ``matrix`` (T, 78) as CSV (78 comma-separated numbers per line, labels as
    integers, floats exact with 17 significant digits), with the :data:`CSV_HEADER`
    line unless ``header=False``; atomically."""
    path = Path(path)
    data = np.asarray(matrix, dtype=np.float64)
    if validate:
        validate_emopain_matrix(data, path)
    buf = io.StringIO()
    if header:
        buf.write(",".join(CSV_HEADER) + "\n")
    for row in data:
        buf.write(",".join(_fmt(v, integer=c >= COL_EXERCISE) for c, v in enumerate(row)) + "\n")
    return write_text(path, buf.getvalue())


def list_emopain_files(folder: str | Path) -> list[Path]:
    """The ``.mat`` and ``.csv`` files directly in ``folder``, sorted by name; two files
    with one stem (``P113N.mat`` and ``P113N.csv``) are an error."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataFormatError(f"{folder}: data folder not found")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in _SUFFIXES)
    stems = Counter(p.stem for p in files)
    dup = sorted(s for s, n in stems.items() if n > 1)
    if dup:
        raise DataFormatError(
            f"{folder}: recording {dup[0]!r} has more than one file (.mat and .csv); keep one"
        )
    return files


def frame_label_shares(recordings: Sequence[EmoPainRecording]) -> dict[str, float]:
    """Shares (fractions of all frames) of each pain value (``no_pain``, ``low``,
    ``high``, ``unlabelled`` for -1) and of ``non_protective`` / ``protective``."""
    pain = np.concatenate([r.pain for r in recordings]) if recordings else np.zeros(0, np.int64)
    prot = (
        np.concatenate([r.protective for r in recordings]) if recordings else np.zeros(0, np.int64)
    )
    n = max(len(pain), 1)
    return {
        "no_pain": float((pain == 0).sum() / n),
        "low": float((pain == 1).sum() / n),
        "high": float((pain == 2).sum() / n),
        "unlabelled": float((pain == -1).sum() / n),
        "non_protective": float((prot == 0).sum() / n),
        "protective": float((prot == 1).sum() / n),
    }


# --------------------------------------------------------------------------------------
# segmentation and voting
# --------------------------------------------------------------------------------------


def exercise_instances(
    exercise: np.ndarray, keep: np.ndarray | None = None
) -> list[tuple[int, int, int]]:
    """Exercise instances: maximal runs of consecutive kept frames with one exercise type.

    Args:
        exercise: (T,) exercise type per frame.
        keep: (T,) bool, frames to use (None: all). A dropped frame ends a run, so every
            instance is contiguous in the recording.

    Returns:
        ``(start, stop, exercise)`` per instance, frames ``start:stop``, in time order.
    """
    exercise = np.asarray(exercise)
    t = len(exercise)
    keep = np.ones(t, dtype=bool) if keep is None else np.asarray(keep, dtype=bool)
    if t == 0:
        return []
    boundary = np.ones(t, dtype=bool)
    boundary[1:] = (exercise[1:] != exercise[:-1]) | ~keep[:-1]
    out = []
    starts = np.flatnonzero(boundary & keep)
    for s in starts:
        e = s + 1
        while e < t and keep[e] and not boundary[e]:
            e += 1
        out.append((int(s), int(e), int(exercise[s])))
    return out


def segment_starts(length: int, segment_length: int, stride: int) -> np.ndarray:
    """Start offsets of the samples cut from an instance of ``length`` frames.

    Starts are ``0, stride, 2*stride, ...`` up to and including the first sample that
    reaches the instance's end (``start + segment_length >= length``); that sample is
    padded past the end. So there are ``1 + ceil(max(length - segment_length, 0) / stride)``
    samples; an instance shorter than one sample gives one. ``length <= 0`` gives none.
    """
    if segment_length <= 0 or stride <= 0:
        raise ValueError(
            f"segment length ({segment_length}) and stride ({stride}) must be positive"
        )
    if length <= 0:
        return np.zeros(0, dtype=np.int64)
    extra = max(length - segment_length, 0)
    n = 1 + -(-extra // stride)
    return np.arange(n, dtype=np.int64) * stride


def majority_label(
    labels: np.ndarray,
    mask: np.ndarray | None = None,
    *,
    threshold: float | None = None,
) -> int:
    """The label of a sample from its frames' labels; padded frames never vote.

    Args:
        labels: (T,) int labels per frame.
        mask: (T,) bool, True for real frames (None: all real).
        threshold: None: the most frequent label among real frames (a tie goes to the
            smallest label). A number ``t`` (binary labels 0/1): 1 if MORE than ``t`` of
            the real frames are 1, else 0; with ``t = 0.5`` exactly half is 0.

    Raises ValueError when no frame is real.
    """
    labels = np.asarray(labels)
    if mask is not None:
        labels = labels[np.asarray(mask, dtype=bool)]
    if labels.size == 0:
        raise ValueError("majority_label: no real frames to vote")
    if threshold is not None:
        return int(np.count_nonzero(labels == 1) > threshold * labels.size)
    values, counts = np.unique(labels, return_counts=True)
    return int(values[np.argmax(counts)])


# --------------------------------------------------------------------------------------
# features
# --------------------------------------------------------------------------------------


def compute_joint_angles(
    coords: np.ndarray, triplets: Sequence[tuple[int, int, int]] = ANGLE_TRIPLETS
) -> np.ndarray:
    """Angles (T, A) float32 in radians, in [0, pi]: for each ``(a, j, b)`` the angle at
    joint ``j`` between the bones to ``a`` and ``b``, from (T, J, 3) coordinates. A bone
    of length 0 gives angle pi/2."""
    coords = np.asarray(coords, dtype=np.float64)
    idx = np.asarray(triplets, dtype=np.int64).reshape(-1, 3)
    u = coords[:, idx[:, 0]] - coords[:, idx[:, 1]]
    v = coords[:, idx[:, 2]] - coords[:, idx[:, 1]]
    nu = np.linalg.norm(u, axis=-1)
    nv = np.linalg.norm(v, axis=-1)
    cos = np.sum(u * v, axis=-1) / np.maximum(nu * nv, 1e-12)
    return np.arccos(np.clip(cos, -1.0, 1.0)).astype(np.float32)


def compute_joint_energies(coords: np.ndarray, fps: float) -> np.ndarray:
    """Kinetic-energy proxy (T, J) float32 per joint: squared speed |dp/dt|^2 in (file
    units / s)^2 (unit mass), by central differences (one-sided at the ends)."""
    coords = np.asarray(coords, dtype=np.float64)
    if coords.shape[0] < 2:
        return np.zeros(coords.shape[:2], dtype=np.float32)
    vel = np.gradient(coords, axis=0) * fps
    return np.sum(vel * vel, axis=-1).astype(np.float32)


FeatureSet = Literal["coords", "emg", "both"]


def feature_names(
    features: str = "both", joint_angles: bool = False, joint_energies: bool = False
) -> list[str]:
    """Names of the per-frame features in ``x`` order: ``j<k>_x/y/z`` (joint-major), then
    ``emg_<channel>``, then ``angle_<a>_<j>_<b>``, then ``energy_j<k>``."""
    if features not in ("coords", "emg", "both"):
        raise ConfigError(f"data: features={features!r}; expected 'coords', 'emg' or 'both'")
    names: list[str] = []
    if features in ("coords", "both"):
        names += [f"j{j}_{a}" for j in range(NUM_JOINTS) for a in "xyz"]
    if features in ("emg", "both"):
        names += [f"emg_{c}" for c in EMG_CHANNELS]
    if joint_angles:
        names += [f"angle_{a}_{j}_{b}" for a, j, b in ANGLE_TRIPLETS]
    if joint_energies:
        names += [f"energy_j{j}" for j in range(NUM_JOINTS)]
    return names


def frame_features(
    rec: EmoPainRecording,
    features: str = "both",
    joint_angles: bool = False,
    joint_energies: bool = False,
    fps: float = 60.0,
) -> np.ndarray:
    """Unstandardised per-frame features (T, F) float32 of a recording, in the order of
    :func:`feature_names`. Derived features use the whole recording (an instance's
    frames are contiguous in it)."""
    parts = []
    if features in ("coords", "both"):
        parts.append(rec.coords.reshape(rec.num_frames, -1))
    if features in ("emg", "both"):
        parts.append(rec.emg)
    if joint_angles:
        parts.append(compute_joint_angles(rec.coords))
    if joint_energies:
        parts.append(compute_joint_energies(rec.coords, fps))
    return np.concatenate(parts, axis=1).astype(np.float32)


# --------------------------------------------------------------------------------------
# dataset and DataModule
# --------------------------------------------------------------------------------------


class EmoPainSegmentDataset(torch.utils.data.Dataset):
    """Fixed-length samples cut from per-recording feature arrays (no copies until an
    item is asked for).

    ``index`` rows are ``(recording position, start frame, real frames)``; the sample is
    ``features[r][start:start + real]`` zero-padded to ``length`` frames. Items are the
    batch dict of :mod:`.base` plus ``aux`` (exercise type) and ``subject``.

    A training dataset wrapped in :class:`~.augment.AugmentedDataset` has its samples'
    real frames augmented by :meth:`augment_frames` (``augment_context``: the keyword
    arguments of :func:`~.augment.augment_features`, set by the DataModule).
    """

    transform = None  # the augmentation Pipeline, set by AugmentedDataset
    _rng = None  # the generator of the item being augmented; None: no augmentation
    augment_context: dict[str, Any] = {}

    def __init__(
        self,
        features: list[np.ndarray],
        index: np.ndarray,
        labels: np.ndarray,
        aux: np.ndarray,
        recording_ids: np.ndarray,
        subject_ids: np.ndarray,
        *,
        length: int,
        frame_targets: list[np.ndarray] | None = None,
    ) -> None:
        self.features = features
        self.index = np.asarray(index, dtype=np.int64).reshape(-1, 3)
        self.labels = np.asarray(labels, dtype=np.int64)
        self.aux = np.asarray(aux, dtype=np.int64)
        self.recording_ids = np.asarray(recording_ids, dtype=np.int64)
        self.subject_ids = np.asarray(subject_ids, dtype=np.int64)
        self.length = length
        self.num_features = int(features[0].shape[1]) if features else 0
        self.frame_targets = frame_targets

    def __len__(self) -> int:
        return len(self.index)

    def window_labels(self) -> np.ndarray:
        """(N,) int64 sample labels (the name TUG's dataset uses)."""
        return self.labels

    def augment_frames(self, frames: np.ndarray, r: int, start: int) -> np.ndarray:
        """The real frames (real, F) of a sample of recording ``r`` at ``start``; when an
        item is being augmented, the pipeline's frames instead."""
        if self._rng is None:
            return frames
        from .augment import augment_features

        return augment_features(self.transform, self.features[r], start, len(frames), self._rng, **self.augment_context)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        r, start, real = (int(v) for v in self.index[i])
        x = np.zeros((self.length, self.num_features), dtype=np.float32)
        x[:real] = self.features[r][start : start + real]
        x[:real] = self.augment_frames(x[:real], r, start)
        mask = np.zeros(self.length, dtype=bool)
        mask[:real] = True
        out = {
            "x": torch.from_numpy(x),
            "mask": torch.from_numpy(mask),
            "y": torch.tensor(self.labels[i], dtype=torch.long),
            "aux": torch.tensor(self.aux[i], dtype=torch.long),
            "recording": torch.tensor(self.recording_ids[r], dtype=torch.long),
            "subject": torch.tensor(self.subject_ids[r], dtype=torch.long),
            "start": torch.tensor(start, dtype=torch.long),
        }
        if self.frame_targets is not None:
            frames = np.zeros(self.length, dtype=np.int64)
            frames[:real] = self.frame_targets[r][start : start + real]
            out["frame_protective"] = torch.from_numpy(frames)
        return out

    def tensors(self) -> dict[str, torch.Tensor]:
        """All samples stacked: ``x`` (N, T, F), ``mask`` (N, T), ``y``, ``aux``,
        ``recording``, ``subject``, ``start`` (N,)."""
        n = len(self)
        x = torch.zeros(n, self.length, self.num_features)
        mask = torch.zeros(n, self.length, dtype=torch.bool)
        for i, (r, start, real) in enumerate(self.index.tolist()):
            x[i, :real] = torch.from_numpy(self.features[r][start : start + real])
            mask[i, :real] = True
        r = self.index[:, 0]
        out = {
            "x": x,
            "mask": mask,
            "y": torch.from_numpy(self.labels.copy()),
            "aux": torch.from_numpy(self.aux.copy()),
            "recording": torch.from_numpy(self.recording_ids[r]),
            "subject": torch.from_numpy(self.subject_ids[r]),
            "start": torch.from_numpy(self.index[:, 1].copy()),
        }
        if self.frame_targets is not None:
            out["frame_protective"] = torch.stack([self[i]["frame_protective"] for i in range(n)]) if n else torch.zeros(0, self.length, dtype=torch.long)
        return out


_TASK_CLASSES = {"pain": list(PAIN_CLASSES), "protective": list(PROTECTIVE_CLASSES)}
_STANDARDIZATION = "per-feature mean/std over the real frames of training instances"


class EmoPainDataModule(MotionDataModule):
    """EmoPain body-movement files -> exercise-wise, fixed-length samples (PLAAN).

    The folder (docs/emopain.md) holds ``train/`` and ``validation/`` with one
    ``<P|C><digits><N|D>.mat`` (or ``.csv``) per participant and level. Every batch is the
    base batch dict (``x`` (B, T, F) float32, ``mask`` (B, T) bool, ``y``, ``recording``,
    ``start`` (B,) int64) plus ``aux`` (B,) int64, the exercise type of the sample's
    instance (0-8, names in ``spec["aux_classes"]``), and ``subject`` (B,) int64, an
    index into :attr:`subject_names`. ``start`` is the sample's first frame in its file.

    Args:
        root: dataset folder. ``None``: synthetic EmoPain-format data, generated on first
            use into the cache (``synthetic`` are the settings of
            :func:`lbp_motion.data.synthetic.generate_emopain_dataset`).
        task: ``pain`` (classes no_pain / low / high, from column 72; frames with pain -1
            are dropped) or ``protective`` (non_protective / protective, column 73).
        classes: fixed by the task; give them only to check (a different list is an error).
        features: ``coords`` (22 joints x XYZ = 66, joint-major), ``emg`` (4) or ``both`` (70).
        joint_angles: add 24 joint angles in radians (:data:`ANGLE_TRIPLETS`).
        joint_energies: add 22 per-joint squared speeds ((units/s)^2), a kinetic-energy proxy.
        standardize: standardise each feature with mean/std fitted on the training
            split's real frames (padded frames stay 0).
        segment_length: pain task, frames per segment (SPEC: 180).
        segment_stride: pain task, frames between segment starts; None = ``segment_length``
            (non-overlapping).
        window_seconds, overlap: protective task, window length in seconds (SPEC: 3 s) and
            overlap fraction in [0, 1) (SPEC: 0.75); window = round(window_seconds * fps)
            frames, stride = max(1, round(window * (1 - overlap))).
        fps: frame rate of the files (60 Hz); used for windows in seconds and energies.
        vote_threshold: protective task, a window is protective iff MORE than this
            fraction of its real frames is protective.
        drop_unlabelled: protective task, also drop frames with pain -1 before cutting
            instances (the pain task always drops them).
        split: ``challenge`` (``train/`` -> train; ``validation/`` -> val and, with
            ``test_from="validation"``, also test) or ``subject`` (files of ``train/`` and
            ``validation/``, or of ``root`` itself without them, pooled and split by
            subject, seeded and stratified by group patient/control).
        test_from: with ``split="challenge"``: ``validation`` (test = the validation
            folder) or ``test`` (a labelled ``test/`` folder).
        val_fraction, test_fraction, split_seed: of ``split="subject"``.
        split_file: CSV ``subject,split`` (as in docs/data-format.md); replaces ``split``
            (the files are pooled as for ``subject``).
        balance: resample the training split only: ``none``, ``smote``,
            ``kmeans_smote`` or ``undersample`` (see :mod:`lbp_motion.data.balance`).
        balance_seed: seed of the resampling.
        predict_split: samples ``lbp predict`` runs on: train, val, test or all.
        batch_size, num_workers: of the DataLoaders.
        synthetic: settings of the synthetic data when ``root`` is None.
        keep_classes: keep only the samples whose (voted) label is one of these classes
            of the task, e.g. ``[low, high]`` for a pain-only estimator (PLAAN's
            hierarchical stage 2); ``classes`` and the labels then follow this list
            (``low`` -> 0, ``high`` -> 1) in every split. The standardisation is still
            fitted on all training samples, so a model trained on the kept classes sees
            features scaled as in a run on all classes. None keeps all.
        frame_protective: add ``frame_protective`` (B, T) int64 to every batch: the
            per-frame protective-behaviour label (column 73, 0 on padded frames), for
            tasks that supervise a per-frame protective detector (the cascade).
        augment: skeleton augmentation of the training samples only, a list of
            transforms as for TUG (docs/data-format.md, "Augmentation"; docs/emopain.md
            says which apply). Spatial transforms need ``features`` coords or both and
            no joint angles or energies; temporal ones (speed, crop) not with
            ``frame_protective``; none with ``balance``.
        augment_seed: seed of the augmentation.
    """

    def __init__(
        self,
        root: str | None = None,
        task: Literal["pain", "protective"] = "pain",
        classes: list[str] | None = None,
        features: FeatureSet = "both",
        joint_angles: bool = False,
        joint_energies: bool = False,
        standardize: bool = True,
        segment_length: int = 180,
        segment_stride: int | None = None,
        window_seconds: float = 3.0,
        overlap: float = 0.75,
        fps: float = 60.0,
        vote_threshold: float = 0.5,
        drop_unlabelled: bool = False,
        split: Literal["challenge", "subject"] = "challenge",
        test_from: Literal["validation", "test"] = "validation",
        val_fraction: float = 0.2,
        test_fraction: float = 0.2,
        split_seed: int = 0,
        split_file: str | None = None,
        balance: BalanceMethod = "none",
        balance_seed: int = 0,
        predict_split: str = "test",
        batch_size: int = 64,
        num_workers: int = 0,
        synthetic: dict[str, Any] | None = None,
        keep_classes: list[str] | None = None,
        frame_protective: bool = False,
        augment: list[dict[str, Any]] | None = None,
        augment_seed: int = 0,
    ) -> None:
        if task not in _TASK_CLASSES:
            raise ConfigError(f"data: task={task!r}; expected 'pain' or 'protective'")
        fixed = _TASK_CLASSES[task]
        if classes is not None and list(classes) != fixed:
            raise ConfigError(
                f"data: classes={list(classes)}; the {task} task's classes are {fixed} (leave classes unset)"
            )
        kept = fixed if keep_classes is None else list(keep_classes)
        if not set(kept) <= set(fixed):
            raise ConfigError(
                f"data: keep_classes={list(kept)}; expected classes of the {task} task {fixed}"
            )
        super().__init__(kept, batch_size, num_workers)
        self.keep_classes = keep_classes
        self.frame_protective = frame_protective
        #: voted label of the task -> label of the kept classes
        self._label_map = {fixed.index(c): i for i, c in enumerate(kept)}
        feature_names(features)  # validates ``features``
        if not fps > 0:
            raise ConfigError(f"data: fps={fps}; expected a positive number")
        if segment_length <= 0 or (segment_stride is not None and segment_stride <= 0):
            raise ConfigError(
                f"data: segment_length={segment_length} and segment_stride={segment_stride} must be positive"
            )
        if not window_seconds > 0 or round(window_seconds * fps) < 1:
            raise ConfigError(
                f"data: window_seconds={window_seconds}; expected at least one frame at fps={fps}"
            )
        if not 0 <= overlap < 1:
            raise ConfigError(f"data: overlap={overlap}; expected a fraction in [0, 1)")
        if not 0 <= vote_threshold < 1:
            raise ConfigError(
                f"data: vote_threshold={vote_threshold}; expected a fraction in [0, 1)"
            )
        if split not in ("challenge", "subject"):
            raise ConfigError(f"data: split={split!r}; expected 'challenge' or 'subject'")
        if test_from not in ("validation", "test"):
            raise ConfigError(f"data: test_from={test_from!r}; expected 'validation' or 'test'")
        if predict_split not in {"train", "val", "test", "all"}:
            raise ConfigError(
                f"data: predict_split={predict_split!r}; expected train, val, test or all"
            )
        if val_fraction < 0 or test_fraction < 0 or val_fraction + test_fraction >= 1:
            raise ConfigError(
                f"data: val_fraction={val_fraction} and test_fraction={test_fraction} must be >= 0 and sum below 1"
            )
        self.save_hyperparameters()
        self.root = root
        self.task = task
        self.features = features
        self.joint_angles = joint_angles
        self.joint_energies = joint_energies
        self.standardize = standardize
        self.fps = float(fps)
        self.vote_threshold = vote_threshold
        self.drop_unlabelled = drop_unlabelled
        self.split = split
        self.test_from = test_from
        self.val_fraction = val_fraction
        self.test_fraction = test_fraction
        self.split_seed = split_seed
        self.split_file = split_file
        self.balance = balance
        self.balance_seed = balance_seed
        self.init_augment(augment, augment_seed)
        pipe = self.augment_pipeline
        if pipe is not None and pipe.spatial and (features == "emg" or joint_angles or joint_energies):
            raise ConfigError(
                f"data: augment: {pipe.spatial[0].name} moves joints, but features={features!r}, "
                f"joint_angles={joint_angles}, joint_energies={joint_energies}; spatial transforms need "
                "features coords or both and no joint angles or energies (or keep to speed and crop)"
            )
        if pipe is not None and pipe.temporal and frame_protective:
            raise ConfigError(
                f"data: augment: {pipe.temporal[0].name} resamples time, which the per-frame targets "
                "of frame_protective=true would not follow; drop speed and crop or frame_protective"
            )
        self.predict_split = predict_split
        self.synthetic = dict(synthetic or {})
        self.window_seconds = window_seconds
        self.overlap = overlap
        if task == "pain":
            self.sample_length = segment_length
            self.sample_stride = segment_stride or segment_length
        else:
            self.sample_length = int(round(window_seconds * fps))
            self.sample_stride = max(1, int(round(self.sample_length * (1 - overlap))))
        self.segment_length = segment_length
        self.segment_stride = segment_stride
        self.subject_names: list[str] = []
        self.recording_subjects: list[str] = []
        self.recording_groups: list[str] = []
        self.subject_split: dict[str, str] = {}
        self.split_subjects: dict[str, list[str]] = {}
        self.feature_mean: np.ndarray | None = None
        self.feature_std: np.ndarray | None = None

    # -- interface ---------------------------------------------------------------
    @property
    def feature_names(self) -> list[str]:
        return feature_names(self.features, self.joint_angles, self.joint_energies)

    @property
    def spec(self) -> dict[str, Any]:
        return {
            "num_features": len(self.feature_names),
            "classes": list(self.classes),
            "aux_classes": list(EXERCISES),
            "task": self.task,
            "features": self.features,
            "joint_angles": self.joint_angles,
            "joint_energies": self.joint_energies,
            "standardization": _STANDARDIZATION if self.standardize else "none",
            "segment_length": self.sample_length,
            "segment_stride": self.sample_stride,
            "window_seconds": self.window_seconds if self.task == "protective" else None,
            "overlap": self.overlap if self.task == "protective" else None,
            "vote": (
                f"protective iff more than {self.vote_threshold:g} of real frames"
                if self.task == "protective"
                else "most frequent class of real frames"
            ),
            "fps": self.fps,
            "split": "file" if self.split_file else self.split,
        }

    def describe(self) -> dict[str, Any]:
        out = dict(self.spec)
        if self.feature_mean is not None:
            out["feature_mean"] = [float(v) for v in self.feature_mean]
            out["feature_std"] = [float(v) for v in self.feature_std]
        if self.split_subjects:
            out["subjects"] = {k: list(v) for k, v in self.split_subjects.items()}
        return out

    def dataset(self, split: str) -> EmoPainSegmentDataset:
        """The samples of ``split`` (``train``, ``val``, ``test`` or ``predict``); reads the
        data on first use. ``dataset(split).tensors()`` stacks them."""
        if not self._datasets:
            self.setup("fit")
        if split not in self._datasets:
            raise ConfigError(f"data: unknown split {split!r}; expected one of {sorted(self._datasets)}")
        return self._datasets[split]

    # -- reading -------------------------------------------------------------------
    def resolve_root(self) -> Path:
        if self.root is not None:
            return Path(self.root).expanduser()
        from .synthetic import ensure_synthetic_emopain

        return ensure_synthetic_emopain(**self.synthetic)

    def _folders(self, root: Path) -> dict[str, Path]:
        """Folder of each source: ``train``/``validation``/``test`` (challenge) or the
        pooled folders (``pooled:<name>``)."""
        if not root.is_dir():
            raise DataFormatError(f"{root}: data folder not found")
        if self.split_file or self.split == "subject":
            subs = [root / n for n in ("train", "validation") if (root / n).is_dir()]
            return {f"pooled:{p.name}": p for p in subs} or {"pooled:.": root}
        out = {}
        for name in ("train", "validation") + (("test",) if self.test_from == "test" else ()):
            if not (root / name).is_dir():
                raise DataFormatError(
                    f"{root / name}: folder not found; split='challenge' needs {root}/train and {root}/validation"
                    + (f" and {root}/test" if self.test_from == "test" else "")
                    + " (or use split='subject' for a flat folder)"
                )
            out[name] = root / name
        return out

    def _files(self, root: Path) -> dict[str, list[Path]]:
        files = {src: list_emopain_files(folder) for src, folder in self._folders(root).items()}
        seen: dict[str, Path] = {}
        for paths in files.values():
            for p in paths:
                if p.stem in seen:
                    raise DataFormatError(
                        f"{p}: recording {p.stem!r} also in {seen[p.stem]}; names must be unique"
                    )
                seen[p.stem] = p
        if not seen:
            raise DataFormatError(f"{root}: no .mat or .csv files found")
        return files

    def train_subject_info(self) -> dict[str, Any]:
        real = self.real_train_dataset()
        subjects = np.asarray(self.subject_names, dtype=object)[real.subject_ids[real.index[:, 0]]]
        return {"subject": subjects, "label": [self.classes[y] for y in real.window_labels()], "site": None}

    def subjects(self) -> list[str]:
        """Sorted subject ids of the files the DataModule uses (file names only)."""
        files = self._files(self.resolve_root())
        return sorted({parse_emopain_name(p)[0] for paths in files.values() for p in paths})

    def setup(self, stage: str | None = None) -> None:
        if self._datasets:
            return
        root = self.resolve_root()
        files = self._files(root)
        recs: list[EmoPainRecording] = []
        source: list[str] = []
        for src, paths in files.items():
            for p in paths:
                recs.append(read_emopain(p))
                source.append(src)
        self.recording_names = [r.name for r in recs]
        self.recording_subjects = [r.subject for r in recs]
        self.recording_groups = [r.group for r in recs]
        self.subject_names = sorted(set(self.recording_subjects))
        subject_index = {s: i for i, s in enumerate(self.subject_names)}
        sides = self._sides(root, recs, source)
        self.split_subjects = {
            name: sorted({r.subject for r, side in zip(recs, sides, strict=True) if name in side})
            for name in ("train", "val", "test")
        }

        # instances and samples per recording
        per_rec: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (index rows, labels, aux)
        fitted: list[list[tuple[int, int]]] = []  # (start, real) of every sample, kept or not
        for r, rec in enumerate(recs):
            frame_labels = rec.pain if self.task == "pain" else rec.protective
            keep = rec.pain >= 0 if (self.task == "pain" or self.drop_unlabelled) else None
            rows, ys, aux, spans = [], [], [], []
            for start, stop, ex in exercise_instances(rec.exercise, keep):
                for off in segment_starts(stop - start, self.sample_length, self.sample_stride):
                    s = start + int(off)
                    real = min(self.sample_length, stop - s)
                    threshold = self.vote_threshold if self.task == "protective" else None
                    label = majority_label(frame_labels[s : s + real], threshold=threshold)
                    spans.append((s, real))  # the standardisation sees every class
                    if label not in self._label_map:  # keep_classes leaves it out
                        continue
                    ys.append(self._label_map[label])
                    rows.append((r, s, real))
                    aux.append(ex)
            per_rec.append(
                (
                    np.asarray(rows, np.int64).reshape(-1, 3),
                    np.asarray(ys, np.int64),
                    np.asarray(aux, np.int64),
                )
            )
            fitted.append(spans)

        # features, standardised with the training split's real frames
        feats = [
            frame_features(rec, self.features, self.joint_angles, self.joint_energies, self.fps)
            for rec in recs
        ]
        num_f = len(self.feature_names)
        total = np.zeros(num_f)
        total_sq = np.zeros(num_f)
        count = 0
        for r, rec in enumerate(recs):
            if "train" not in sides[r]:
                continue
            used = np.zeros(rec.num_frames, dtype=bool)
            for s, real in fitted[r]:
                used[s : s + real] = True
            f = feats[r][used].astype(np.float64)
            total += f.sum(axis=0)
            total_sq += (f * f).sum(axis=0)
            count += len(f)
        if self.standardize:
            if count == 0:
                raise DataFormatError(
                    f"{root}: the training split has no usable frames; cannot fit the standardisation"
                )
            mean = total / count
            std = np.sqrt(np.maximum(total_sq / count - mean * mean, 0.0))
            std = np.where(std > 1e-8 * np.maximum(np.abs(mean), 1.0), std, 1.0)
            self.feature_mean, self.feature_std = mean.astype(np.float32), std.astype(np.float32)
            feats = [((f - self.feature_mean) / self.feature_std).astype(np.float32) for f in feats]
        frame_targets = [rec.protective for rec in recs] if self.frame_protective else None
        del recs

        rec_ids = np.arange(len(feats), dtype=np.int64)
        subj_ids = np.asarray([subject_index[s] for s in self.recording_subjects], dtype=np.int64)

        def subset(wanted: Iterable[str]) -> EmoPainSegmentDataset:
            wanted = set(wanted)
            chosen = [p for r, p in enumerate(per_rec) if sides[r] & wanted]
            index = np.concatenate([c[0] for c in chosen]) if chosen else np.zeros((0, 3), np.int64)
            labels = np.concatenate([c[1] for c in chosen]) if chosen else np.zeros(0, np.int64)
            aux = np.concatenate([c[2] for c in chosen]) if chosen else np.zeros(0, np.int64)
            return EmoPainSegmentDataset(
                feats, index, labels, aux, rec_ids, subj_ids, length=self.sample_length,
                frame_targets=frame_targets,
            )

        for name in ("train", "val", "test"):
            self._datasets[name] = subset([name])
        self._datasets["predict"] = subset(
            ["train", "val", "test"] if self.predict_split == "all" else [self.predict_split]
        )
        self._datasets["train"].augment_context = dict(
            layout=EMOPAIN22, coord_columns=3 * NUM_JOINTS if self.features != "emg" else 0,
            mean=self.feature_mean, std=self.feature_std,
        )
        self.finish_train_split(stage)  # refuses fewer than two training classes when fitting
        log.info(
            "EmoPain data %s (%s task): %d recordings, %s samples (train/val/test)",
            root,
            self.task,
            len(feats),
            [len(self._datasets[s]) for s in ("train", "val", "test")],
        )

    def _sides(self, root: Path, recs: list[EmoPainRecording], source: list[str]) -> list[set[str]]:
        """Splits of each recording (a set: the validation folder can be val and test).
        Sets :attr:`subject_split` (subject -> its first split of train, val, test)."""
        if self.split_file or self.split == "subject":
            subjects = sorted({r.subject for r in recs})
            if self.split_file:
                self.subject_split = read_split_file(self.split_file, subjects)
            else:
                groups = {r.subject: r.group for r in recs}
                self.subject_split = split_subjects(
                    groups,
                    val_fraction=self.val_fraction,
                    test_fraction=self.test_fraction,
                    seed=self.split_seed,
                )
            return [{self.subject_split[r.subject]} for r in recs]
        by_folder: dict[str, set[str]] = {}
        for r, src in zip(recs, source, strict=True):
            by_folder.setdefault(r.subject, set()).add(src)
        for subject, srcs in sorted(by_folder.items()):
            if len(srcs) > 1:
                where = sorted(srcs)
                raise DataFormatError(
                    f"{root}: subject {subject!r} has files in both {where[0]}/ and {where[1]}/; "
                    "a subject must be on one side of the split (use split='subject' to pool and re-split)"
                )
        mapping = {
            "train": {"train"},
            "validation": {"val"} | ({"test"} if self.test_from == "validation" else set()),
            "test": {"test"},
        }
        sides = [set(mapping[src]) for src in source]
        self.subject_split = {}
        for r, side in zip(recs, sides, strict=True):
            self.subject_split[r.subject] = (
                "train" if "train" in side else "val" if "val" in side else "test"
            )
        return sides

    def split_counts(self) -> dict[str, dict[str, int]]:
        """Samples per class in each split (for logs and docs)."""
        if not self._datasets:
            self.setup("fit")
        out = {}
        for split in ("train", "val", "test"):
            counts = Counter(self._datasets[split].window_labels().tolist())
            out[split] = {c: counts.get(i, 0) for i, c in enumerate(self.classes)}
        return out
