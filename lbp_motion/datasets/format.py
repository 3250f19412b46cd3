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
import io
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lbp_motion.atomic import atomic_write
from lbp_motion.datasets.layouts import get_layout
from lbp_motion.errors import LbpError

FORMAT_VERSION = 1
LABELS_FILE = "labels.csv"
REQUIRED_COLUMNS = ("recording", "subject", "label")
#: largest |x| or |y| accepted, in pixels: beyond it a coordinate is a unit or
#: overflow error (1e30 would overflow the body scale and silently zero the features)
MAX_COORDINATE = 1e6


class DataFormatError(LbpError):
    """A dataset file breaks the documented format; the message names file and field."""


@dataclass
class LabelRow:
    """One row of ``labels.csv``."""

    recording: str
    subject: str
    label: str
    site: str | None = None
    #: other columns of the file (kept when the file is rewritten; not compared)
    extra: dict[str, str] = field(default_factory=dict, compare=False, repr=False)


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

    atomic_write(path, write)
    return path


def validate_keypoints(
    keypoints: np.ndarray, *, source: str, num_joints: int | None = None
) -> None:
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
        raise DataFormatError(
            f"{source}: field 'keypoints' has dtype {keypoints.dtype}; expected float32"
        )
    bad = ~np.isfinite(keypoints)
    if bad.any():
        t, j, c = np.argwhere(bad)[0]
        raise DataFormatError(
            f"{source}: field 'keypoints' holds {int(bad.sum())} NaN/inf values "
            f"(first at frame {t}, joint {j}, channel {c}); mark missing joints with zeros and confidence 0"
        )
    far = np.abs(keypoints[..., :2]) > MAX_COORDINATE
    if far.any():
        t, j, c = np.argwhere(far)[0]
        raise DataFormatError(
            f"{source}: field 'keypoints' has {int(far.sum())} coordinates above {MAX_COORDINATE:g} pixels in absolute value "
            f"(first at frame {t}, joint {j}: {'xy'[c]} = {keypoints[t, j, c]:g}); expected pixel coordinates"
        )
    conf = keypoints[..., 2]
    if conf.size and (conf.min() < 0 or conf.max() > 1):
        raise DataFormatError(
            f"{source}: field 'keypoints' has confidences in [{conf.min():g}, {conf.max():g}]; expected [0, 1]"
        )


_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a zip archive (numpy.savez), an empty one
_NPY_MAGIC = b"\x93NUMPY"


def _sniff(path: Path) -> str | None:
    """Why ``path`` is not a zip archive, or None if it is one."""
    with open(path, "rb") as fh:
        head = fh.read(16)
    if head.startswith(_ZIP_MAGIC):
        return None
    if not head:
        return "the file is empty"
    if head.startswith(_NPY_MAGIC):
        return "it is a single .npy array; save the fields with numpy.savez"
    if head.startswith(b"\x80"):
        return "it is a Python pickle; save the fields with numpy.savez"
    text = head.decode("utf-8", errors="ignore")
    if text and all(c.isprintable() or c.isspace() for c in text):
        return f"it is a text file starting {text[:12]!r}; expected a zip archive written by numpy.savez"
    return f"it starts with bytes {head[:8]!r}; expected a zip archive written by numpy.savez"


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    """All arrays of an .npz archive, without pickle; errors name the file and the key."""
    why = _sniff(path)
    if why is not None:
        raise DataFormatError(f"{path}: not a keypoint .npz file ({why})")
    data: dict[str, np.ndarray] = {}
    try:
        with np.load(path, allow_pickle=False) as npz:
            for key in npz.files:
                try:
                    data[key] = npz[key]
                except ValueError as err:
                    if "allow_pickle" in str(err) or "Object arrays" in str(err):
                        raise DataFormatError(
                            f"{path}: field {key!r} holds Python objects; the format allows plain arrays "
                            "(numbers, strings) only"
                        ) from None
                    raise
    except DataFormatError:
        raise
    except Exception as err:  # a damaged zip, a truncated member
        raise DataFormatError(
            f"{path}: not a readable keypoint .npz file ({type(err).__name__}: {err})"
        ) from None
    return data


def _scalar(path: Path, key: str, value: np.ndarray, kind: type, expected: str):
    """``value`` as one ``kind`` (float or int) or a DataFormatError naming file, field, value."""
    shown = (
        value.item()
        if value.size == 1
        else value.tolist()
        if value.size <= 4
        else f"an array of shape {value.shape}"
    )
    if value.size != 1 or value.dtype.kind not in "biuf":
        raise DataFormatError(f"{path}: field {key!r} is {shown!r}; expected {expected}")
    number = float(value.reshape(-1)[0])
    if kind is int:
        if not math.isfinite(number) or number != int(number):
            raise DataFormatError(f"{path}: field {key!r} is {shown!r}; expected {expected}")
        return int(number)
    return number


def read_recording(path: str | Path, *, mmap: bool = False) -> Recording:
    """Read and validate ``<recording>.npz``; errors name the file and the field."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"{path}: file not found")
    data = _load_npz(path)
    for key in ("keypoints", "layout", "fps", "image_size"):
        if key not in data:
            raise DataFormatError(f"{path}: field {key!r} is missing; it has {sorted(data)}")
    if "format_version" in data:
        version = _scalar(
            path, "format_version", data.pop("format_version"), int, f"the integer {FORMAT_VERSION}"
        )
    else:
        version = FORMAT_VERSION
    if version > FORMAT_VERSION:
        raise DataFormatError(
            f"{path}: field 'format_version' is {version}; this lbp_motion reads up to {FORMAT_VERSION}"
        )
    if version < 1:
        raise DataFormatError(
            f"{path}: field 'format_version' is {version}; expected {FORMAT_VERSION}"
        )
    layout_value = data.pop("layout")
    if layout_value.size != 1 or layout_value.dtype.kind not in "US":
        raise DataFormatError(
            f"{path}: field 'layout' is {layout_value.tolist()!r}; expected a layout name such as 'coco17'"
        )
    layout = str(layout_value.reshape(-1)[0])
    try:
        num_joints = get_layout(layout).num_joints
    except ValueError as err:
        raise DataFormatError(f"{path}: field 'layout': {err}") from None
    keypoints = data.pop("keypoints")
    validate_keypoints(keypoints, source=str(path), num_joints=num_joints)
    fps = _scalar(path, "fps", data.pop("fps"), float, "a positive number (frames per second)")
    if not (fps > 0 and math.isfinite(fps)):
        raise DataFormatError(f"{path}: field 'fps' is {fps}; expected a positive number")
    size_value = np.asarray(data.pop("image_size")).reshape(-1)
    size: tuple = tuple(size_value.tolist())
    if (
        len(size) != 2
        or size_value.dtype.kind not in "biuf"
        or not all(math.isfinite(v) and v == int(v) for v in size)
        or min(size) <= 0
    ):
        raise DataFormatError(f"{path}: field 'image_size' is {size}; expected (width, height) > 0")
    meta = {k: (v.item() if v.ndim == 0 else v) for k, v in data.items()}
    return Recording(path.stem, keypoints, layout, fps, (int(size[0]), int(size[1])), meta)


def check_recording_name(name: str) -> str | None:
    """Why ``name`` (a ``recording`` of labels.csv) is not a plain file name inside the
    data folder, or None if it is one."""
    if name in (".", ".."):
        return "is not a file name"
    if "/" in name or "\\" in name:
        return "is a path; expected a file name inside the data folder (no '/' or '\\')"
    if "\0" in name or not name.isprintable():
        return "holds control characters"
    return None


def _decode_error(path: Path, raw: bytes, err: UnicodeDecodeError) -> DataFormatError:
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        guess = "it looks like UTF-16"
    else:
        guess = "perhaps Latin-1 or Windows-1252"
    line = raw[: err.start].count(b"\n") + 1
    return DataFormatError(
        f"{path}, line {line}: not UTF-8 text (byte {raw[err.start : err.start + 1]!r} at offset {err.start}; "
        f"{guess}); save it as UTF-8"
    )


def read_labels(root: str | Path) -> list[LabelRow]:
    """Read ``root/labels.csv``; errors name the file, the row and the field.

    The file is UTF-8 (a leading byte-order mark is allowed, as Excel writes it);
    header names are stripped of whitespace and must be unique; ``recording`` must be
    a file name inside the folder (see :func:`check_recording_name`).
    """
    root = Path(root)
    if not root.is_dir():
        raise DataFormatError(f"{root}: data folder not found")
    path = root / LABELS_FILE
    if not path.is_file():
        raise DataFormatError(f"{path}: file not found; a dataset folder needs {LABELS_FILE}")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise _decode_error(path, raw, err) from None
    if "\0" in text:
        raise DataFormatError(f"{path}: holds NUL bytes; not a CSV text file")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        columns = [c.strip() for c in header or []]
        dupes = sorted({c for c in columns if columns.count(c) > 1 and c})
        if dupes:
            raise DataFormatError(
                f"{path}: column {dupes[0]!r} appears more than once in the header {columns}"
            )
        missing = [c for c in REQUIRED_COLUMNS if c not in columns]
        if missing:
            raise DataFormatError(f"{path}: columns {missing} are missing; it has {columns}")
        rows, seen = [], set()
        for values in reader:
            line = reader.line_num
            if not any(v.strip() for v in values):
                continue  # blank line
            rec = dict(zip(columns, (v.strip() for v in values)))
            for col in REQUIRED_COLUMNS:
                if not rec.get(col):
                    raise DataFormatError(f"{path}, line {line}: field {col!r} is empty")
            name = rec["recording"]
            why = check_recording_name(name)
            if why is not None:
                raise DataFormatError(
                    f"{path}, line {line}: field 'recording' is {name!r}; it {why}"
                )
            if name in seen:
                raise DataFormatError(f"{path}, line {line}: recording {name!r} appears twice")
            seen.add(name)
            extra = {c: v for c, v in rec.items() if c and c not in (*REQUIRED_COLUMNS, "site")}
            rows.append(
                LabelRow(name, rec["subject"], rec["label"], rec.get("site") or None, extra)
            )
    except csv.Error as err:
        raise DataFormatError(f"{path}, line {reader.line_num}: not valid CSV ({err})") from None
    if not rows:
        raise DataFormatError(f"{path}: no recordings listed")
    return rows


def write_labels(root: str | Path, rows: list[LabelRow]) -> Path:
    """Write ``root/labels.csv`` atomically (with a ``site`` column if any row has one,
    then the rows' other columns, in the order first seen)."""
    path = Path(root) / LABELS_FILE
    with_site = any(r.site is not None for r in rows)
    extra: list[str] = []
    for r in rows:
        extra.extend(c for c in r.extra if c not in extra)
    columns = list(REQUIRED_COLUMNS) + (["site"] if with_site else []) + extra

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(columns)
            for r in rows:
                writer.writerow(
                    [r.recording, r.subject, r.label]
                    + ([r.site or ""] if with_site else [])
                    + [r.extra.get(c, "") for c in extra]
                )

    atomic_write(path, write)
    return path


def _describe(row: LabelRow) -> str:
    text = f"subject {row.subject!r}, label {row.label!r}"
    return text + (f", site {row.site!r}" if row.site is not None else "")


def merge_labels(
    root: str | Path, rows: list[LabelRow], *, source: str | Path = "the new rows"
) -> list[LabelRow]:
    """Add ``rows`` to ``root/labels.csv`` atomically and return the rows added.

    Rows already there are kept as they are (in their order, with their other columns);
    a new row identical to one there (same subject, label and site) changes nothing; a
    new recording is appended. Without a ``labels.csv`` it is created. No row is ever
    dropped; conflicting rows are refused (see :func:`check_labels_merge`) and nothing
    is written.
    """
    root = Path(root)
    existing = check_labels_merge(root, rows, source=source)
    known = {r.recording for r in existing}
    added = [r for r in rows if r.recording not in known]
    if added:
        write_labels(root, existing + added)
    return added


def check_labels_merge(
    root: str | Path, rows: list[LabelRow], *, source: str | Path = "the new rows"
) -> list[LabelRow]:
    """The rows of ``root/labels.csv`` (none if there is no such file), after checking
    that ``rows`` can be merged into them: a recording listed in both with another
    subject, label or site is a :class:`DataFormatError` naming both files and the
    recording."""
    path = Path(root) / LABELS_FILE
    existing = read_labels(root) if path.exists() else []
    by_name = {r.recording: r for r in existing}
    conflicts = [
        (by_name[r.recording], r)
        for r in rows
        if r.recording in by_name and by_name[r.recording] != r
    ]
    if conflicts:
        old, new = conflicts[0]
        more = f" ({len(conflicts)} such recordings)" if len(conflicts) > 1 else ""
        raise DataFormatError(
            f"{path}: recording {old.recording!r} is listed with {_describe(old)}, but {source} says "
            f"{_describe(new)}{more}; nothing was written: correct one of the two files"
        )
    return existing
