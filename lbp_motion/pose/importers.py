"""Importers for keypoints made elsewhere, into the keypoint format of docs/data-format.md.

Readers (each returns a :class:`~lbp_motion.datasets.format.Recording`; write it with
``write_recording``): :func:`read_keraal_json` (below), :func:`read_coco_results`
(COCO-style results JSON: detectron2, AlphaPose), :func:`read_openpose_json`
(OpenPose's per-frame JSON files), and :func:`import_keypoints`, which picks the reader
from the file. Where a file holds several people per frame, one main subject is kept
with the tracking rule of :mod:`.tracking`.

KERAAL JSON (the KERAAL low-back-pain rehabilitation dataset's pose files) holds
``{"positions": {frame: {joint: [x, y(, z)]}}}`` with coordinates normalised to [0, 1]
of the image and no confidences. Three flavours, told apart by their joint keys:

* AlphaPose: joint keys "0".."16" in COCO-17 order; frame keys 0-based ("0", "1", ...);
* OpenPose: joint names "Nose", "Neck", "rShoulder", ... (COCO-18); frame keys 1-based
  floats ("1.0", "2.0", ...); undetected joints are left out;
* BlazePose (MediaPipe): 33 names "Nose", "Left_eye_inner", ...; frame keys 1-based
  floats; the third value (z) is dropped.

The importer turns frame keys into 0-based frame numbers (1-based keys minus one), so
frame t of every flavour is the video's t-th frame; a frame missing from the file
becomes a row of zeros (confidence 0) so timing survives. Coordinates are scaled to
pixels with the image size; present joints get confidence 1, absent ones 0.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from lbp_motion.datasets.format import DataFormatError, Recording, validate_keypoints
from lbp_motion.datasets.layouts import get_layout

KERAAL_IMAGE_SIZE = (960, 544)  # KERAAL group 3 videos


def _snake(name: str) -> str:
    """KERAAL joint names to layout names: 'rShoulder' -> 'right_shoulder',
    'Left_eye_inner' -> 'left_eye_inner', 'Nose' -> 'nose'."""
    m = re.fullmatch(r"([rl])([A-Z]\w*)", name)
    if m:
        side = "right" if m.group(1) == "r" else "left"
        return f"{side}_{m.group(2).lower()}"
    return name.lower()


def _flavour(joint_keys: set[str]) -> str:
    if joint_keys and all(k.isdigit() for k in joint_keys):
        return "coco17"
    names = {_snake(k) for k in joint_keys}
    if names & {"left_eye_inner", "mouth_left", "left_heel"}:
        return "blazepose33"
    if "neck" in names or names <= set(get_layout("openpose18").joints):
        return "openpose18"
    raise DataFormatError(f"joint keys {sorted(joint_keys)[:5]}... match no KERAAL flavour")


def read_keraal_json(
    path: str | Path, *, image_size: tuple[int, int] = KERAAL_IMAGE_SIZE, fps: float = 30.0
) -> Recording:
    """Read one KERAAL pose file as a :class:`~lbp_motion.datasets.format.Recording` in its
    own layout (coco17, openpose18 or blazepose33); pixels, confidences 1/0."""
    path = Path(path)
    try:
        positions = json.loads(path.read_text())["positions"]
    except (OSError, ValueError, KeyError) as err:
        raise DataFormatError(
            f"{path}: not a KERAAL pose file with a 'positions' field ({err})"
        ) from None
    if not positions:
        raise DataFormatError(f"{path}: field 'positions' is empty")
    try:
        frames = {int(float(k)): v for k, v in positions.items()}
    except ValueError as err:
        raise DataFormatError(
            f"{path}: field 'positions' has a frame key that is not a number ({err})"
        ) from None
    joint_keys = {j for joints in frames.values() for j in joints}
    try:
        layout = get_layout(_flavour(joint_keys))
    except DataFormatError as err:
        raise DataFormatError(f"{path}: {err}") from None
    first = min(frames)
    if first not in (0, 1):
        raise DataFormatError(f"{path}: field 'positions' starts at frame {first}; expected 0 or 1")
    num_frames = max(frames) - first + 1
    keypoints = np.zeros((num_frames, layout.num_joints, 3), np.float32)
    width, height = image_size
    for key, joints in frames.items():
        t = key - first
        for joint, value in joints.items():
            j = int(joint) if layout.name == "coco17" else layout.index(_snake(joint))
            keypoints[t, j] = (value[0] * width, value[1] * height, 1.0)
    keypoints[..., 0].clip(0, width, out=keypoints[..., 0])
    keypoints[..., 1].clip(0, height, out=keypoints[..., 1])
    validate_keypoints(keypoints, source=str(path), num_joints=layout.num_joints)
    return Recording(
        path.stem,
        keypoints,
        layout.name,
        fps,
        (width, height),
        {"source": "keraal", "first_frame_key": first},
    )


# -- COCO results and OpenPose JSON ------------------------------------------------------
def _frame_number(value: object) -> int:
    """A COCO ``image_id`` as a frame number: an int, or the last number in a file name
    such as ``"000012.jpg"``."""
    if isinstance(value, (int, np.integer)):
        return int(value)
    text = str(value)
    try:
        return int(float(text))
    except ValueError:
        digits = re.findall(r"\d+", Path(text).stem)
        if not digits:
            raise ValueError(f"cannot read a frame number from image_id {value!r}") from None
        return int(digits[-1])


def _load_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise DataFormatError(f"{path}: not a readable JSON file ({err})") from None


def _extent_size(keypoints: np.ndarray) -> tuple[int, int]:
    """An image size holding every keypoint, where the real one is not known."""
    ok = keypoints[..., 2] > 0
    if not ok.any():
        return (1, 1)
    pts = keypoints[..., :2][ok]
    return int(np.ceil(pts[:, 0].max())) + 1, int(np.ceil(pts[:, 1].max())) + 1


def _subject(frames: list, layout: str, fps: float) -> tuple[np.ndarray, int]:
    from lbp_motion.pose.tracking import main_subject

    subject = main_subject(frames, get_layout(layout).num_joints, np.arange(len(frames)) / fps)
    return subject.keypoints, subject.num_tracks


def _recording(
    path: Path, keypoints, layout, fps, image_size, meta, target: str | None
) -> Recording:
    from lbp_motion.datasets.layouts import convert_layout

    if target is not None and target != layout:
        keypoints, layout = convert_layout(keypoints, layout, target), target
    size = tuple(int(v) for v in image_size) if image_size is not None else _extent_size(keypoints)
    validate_keypoints(keypoints, source=str(path), num_joints=get_layout(layout).num_joints)
    return Recording(path.stem, keypoints, layout, float(fps), size, meta)


def read_coco_results(
    path: str | Path,
    *,
    fps: float = 30.0,
    image_size: tuple[int, int] | None = None,
    layout: str | None = "coco17",
) -> Recording:
    """COCO-style keypoint results (``[{"image_id", "category_id", "keypoints": [x, y, s]
    * 17, "score", "bbox" or "box"}, ...]``, as detectron2's COCO evaluator and
    AlphaPose write them) -> one subject.

    ``image_id`` is the frame number (an int, or the last number of a file name such as
    ``"000012.jpg"``); rows start at the smallest one found, and frames nobody was
    found in are zero rows. Keypoint scores above 1 (heatmap logits of some tools) are
    squashed with a logistic function. Coordinates are pixels; ``image_size``
    defaults to the extent of the keypoints. Results whose ``category_id`` is not 1
    (person) are ignored.
    """
    from lbp_motion.pose.base import PersonPose

    path = Path(path)
    data = _load_json(path)
    if isinstance(data, dict) and "annotations" in data:
        data = data["annotations"]
    if not isinstance(data, list):
        raise DataFormatError(f"{path}: expected a list of COCO keypoint results")
    entries = []
    for i, item in enumerate(data):
        if not isinstance(item, dict) or "keypoints" not in item or "image_id" not in item:
            raise DataFormatError(f"{path}: result {i} lacks 'image_id' or 'keypoints'")
        if item.get("category_id", 1) != 1:
            continue
        kp = np.asarray(item["keypoints"], dtype=np.float64).reshape(-1, 3)
        if kp.shape[0] != 17:
            raise DataFormatError(
                f"{path}: result {i} has {kp.shape[0]} keypoints; expected 17 (COCO)"
            )
        try:
            frame = _frame_number(item["image_id"])
        except ValueError as err:
            raise DataFormatError(f"{path}: result {i}: {err}") from None
        entries.append(
            (frame, kp, float(item.get("score", 1.0)), item.get("bbox") or item.get("box"))
        )
    if not entries:
        raise DataFormatError(f"{path}: no person keypoints found")
    start = min(e[0] for e in entries)
    frames: list[list] = [[] for _ in range(max(e[0] for e in entries) - start + 1)]
    squash = max(float(e[1][:, 2].max()) for e in entries) > 1.0
    for frame, kp, score, box in entries:
        conf = 1.0 / (1.0 + np.exp(-kp[:, 2])) if squash else np.clip(kp[:, 2], 0.0, 1.0)
        person = np.concatenate([kp[:, :2], conf[:, None]], axis=1).astype(np.float32)
        person[kp[:, 2] <= 0] = 0.0
        xyxy = None
        if box is not None and len(box) == 4:
            x, y, w, h = (float(v) for v in box)
            xyxy = np.array([x, y, x + w, y + h])
        frames[frame - start].append(PersonPose(person, "coco17", score, xyxy))
    keypoints, tracks = _subject(frames, "coco17", fps)
    meta = {
        "source": "coco-results",
        "source_file": path.name,
        "first_frame": start,
        "num_tracks": tracks,
    }
    return _recording(path, keypoints, "coco17", fps, image_size, meta, layout)


OPENPOSE_MODELS = {18: "openpose18", 25: "openpose_body25"}


def read_openpose_json(
    path: str | Path,
    *,
    fps: float = 30.0,
    image_size: tuple[int, int] | None = None,
    layout: str | None = "coco17",
) -> Recording:
    """OpenPose ``--write_json`` output -> one subject: a folder of per-frame files
    (``<name>_000000000012_keypoints.json``: the last number of the name is the frame)
    or one such file. Each holds ``{"people": [{"pose_keypoints_2d": [x, y, c, ...]}]}``
    of the COCO-18 or BODY_25 model (told apart by the keypoint count). Coordinates are
    pixels, unless all of them lie in [0, 1] (``--keypoint_scale 3``): then they are
    scaled by ``image_size``, which must be given."""
    from lbp_motion.pose.base import PersonPose

    path = Path(path)
    files = sorted(path.glob("*.json")) if path.is_dir() else [path]
    if not files:
        raise DataFormatError(f"{path}: no OpenPose JSON files")
    numbered = []
    for i, f in enumerate(files):
        digits = re.findall(r"\d+", f.stem)
        numbered.append((int(digits[-1]) if digits else i, f))
    numbered.sort()
    start = numbered[0][0]
    people_per_frame: list[tuple[int, np.ndarray]] = []
    model = None
    for number, f in numbered:
        data = _load_json(f)
        if not isinstance(data, dict) or "people" not in data:
            raise DataFormatError(f"{f}: not an OpenPose JSON file (no 'people' field)")
        for person in data["people"]:
            values = np.asarray(person.get("pose_keypoints_2d") or [], dtype=np.float64)
            if values.size == 0:
                continue
            values = values.reshape(-1, 3)
            name = OPENPOSE_MODELS.get(len(values))
            if name is None:
                raise DataFormatError(
                    f"{f}: {len(values)} keypoints per person; expected 18 (COCO) or 25 (BODY_25)"
                )
            if model not in (None, name):
                raise DataFormatError(f"{f}: mixes OpenPose models ({model} and {name})")
            model = name
            people_per_frame.append((number - start, values))
    if model is None:
        raise DataFormatError(f"{path}: no person in the OpenPose files")
    scale = np.ones(2)
    if all((v[:, :2] <= 1.0).all() for _, v in people_per_frame):
        if image_size is None:
            raise DataFormatError(
                f"{path}: the coordinates are normalised to [0, 1]; give the image size"
            )
        scale = np.asarray(image_size, dtype=np.float64)
    frames: list[list] = [[] for _ in range(numbered[-1][0] - start + 1)]
    for t, values in people_per_frame:
        conf = np.clip(values[:, 2], 0.0, 1.0)
        person = np.zeros((len(values), 3), dtype=np.float32)
        person[:, :2] = values[:, :2] * scale
        person[:, 2] = conf
        person[conf <= 0] = 0.0
        frames[t].append(PersonPose(person, model, float(conf.mean())))
    keypoints, tracks = _subject(frames, model, fps)
    meta = {
        "source": "openpose-json",
        "source_file": path.name,
        "first_frame": start,
        "num_tracks": tracks,
    }
    return _recording(path, keypoints, model, fps, image_size, meta, layout)


def import_keypoints(
    path: str | Path,
    *,
    fps: float | None = None,
    image_size: tuple[int, int] | None = None,
    layout: str | None = "coco17",
) -> Recording:
    """Read keypoints from ``path`` with the reader its content calls for: ``.npz`` (the
    keypoint format), a folder or ``{"people": ...}`` (OpenPose), a list (COCO results),
    ``{"positions": ...}`` (KERAAL; ``image_size`` defaults to KERAAL's 960 x 544).
    Converted to ``layout`` (None: keep the file's)."""
    from lbp_motion.datasets.format import read_recording
    from lbp_motion.datasets.layouts import convert_layout

    path = Path(path)
    if not path.exists():
        raise DataFormatError(f"{path}: file not found")
    if path.suffix.lower() == ".npz":
        rec = read_recording(path)
    elif path.is_dir():
        return read_openpose_json(path, fps=fps or 30.0, image_size=image_size, layout=layout)
    else:
        data = _load_json(path)
        if isinstance(data, list) or (isinstance(data, dict) and "annotations" in data):
            return read_coco_results(path, fps=fps or 30.0, image_size=image_size, layout=layout)
        if isinstance(data, dict) and "people" in data:
            return read_openpose_json(path, fps=fps or 30.0, image_size=image_size, layout=layout)
        if not (isinstance(data, dict) and "positions" in data):
            raise DataFormatError(
                f"{path}: not a known keypoint file (.npz, COCO results list, OpenPose 'people', KERAAL 'positions')"
            )
        rec = read_keraal_json(path, image_size=image_size or KERAAL_IMAGE_SIZE, fps=fps or 30.0)
    if layout is not None and rec.layout != layout:
        rec = Recording(
            rec.name,
            convert_layout(rec.keypoints, rec.layout, layout),
            layout,
            rec.fps,
            rec.image_size,
            rec.meta,
        )
    return rec
