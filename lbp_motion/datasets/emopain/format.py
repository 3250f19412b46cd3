"""The EmoPain 2020 challenge body-movement file format (docs/emopain.md): reader,
writer, checks.

One file per participant and exercise level, named ``<P|C><digits><N|D>``
(``P113N.mat``: patient 113, normal level; ``C012D.csv``: control 12, difficult level),
holding a T x 78 matrix, one row per frame at 60 Hz:

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
"""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lbp_motion.atomic import atomic_write, write_text
from lbp_motion.datasets.format import DataFormatError
from lbp_motion.datasets.layouts import EMOPAIN22

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
