"""A seeded generator of synthetic timed-up-and-go (TUG) 2D pose recordings.

Each recording is a COCO-17 keypoint sequence (see :mod:`lbp_motion.datasets.layouts`) of a
person doing a TUG test seen from the side by a fixed camera: seated -> stand up ->
walk ~3 m -> turn 180 deg -> walk back -> turn -> sit down -> seated.

The person is a kinematic stick figure in a 3D world (metres; ``x`` along the walkway,
``y`` up, ``z`` depth), projected by a pinhole camera that looks at the walkway from
the side and slightly obliquely, so that left and right joints stay apart in the image
and swap when the person faces the other way. A simulated detector adds pixel noise,
confidences and missed joints.

Severity (a class name such as ``"low"``) is a latent score ``z`` (0 for the first
class, 2 for the last, evenly between) plus per-subject noise, so neighbouring classes
overlap a little. ``z`` drives cadence, step length, arm swing, trunk lean and
stiffness, sit-to-stand duration and strategy (hands pushing on the thighs) and the
turn (slower, in several steps, trunk turning "en bloc"). Subjects also have their own
style (height, speed, arm swing, lean) and every recording varies a little.

The opt-in ``nuisance`` setting adds strong subject-level traits unrelated to the label
(body proportions, personal gait style, a camera placement per subject, tracking
errors, a per-subject missed-joint profile), drawn from ``(seed, subject)`` only, so
that a model that memorises subjects fails on held-out ones (docs/data-format.md).

Public API: :func:`generate_tug_dataset` and :func:`ensure_synthetic_tug`.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lbp_motion.datasets.format import LabelRow, write_labels, write_recording
from lbp_motion.datasets.layouts import COCO17
from lbp_motion.datasets.synthetic.cache import ensure_generated
from lbp_motion.datasets.synthetic.tug_body import (
    _Camera,
    _jitter_camera,
    _project,
    _recording_motion,
    _site_camera,
    _Style,
    _subject_style,
)
from lbp_motion.datasets.synthetic.tug_kinematics import _simulate
from lbp_motion.datasets.synthetic.tug_nuisance import (
    NUISANCE_PARTS,
    _add_bias,
    _apply_nuisance,
    _detect,
    _Nuisance,
    _nuisance_strengths,
    _subject_camera,
    _subject_nuisance,
)

__all__ = [
    "generate_tug_dataset",
    "ensure_synthetic_tug",
    "GENERATOR",
    "GENERATOR_VERSION",
    "NUISANCE_PARTS",
]

GENERATOR = "lbp_motion.synthetic.tug"
#: Bump when the motion model changes: cached folders are keyed on it.
GENERATOR_VERSION = 1


# --------------------------------------------------------------------------------------
# datasets
# --------------------------------------------------------------------------------------


def _assign(
    num_subjects: int, classes: Sequence[str], sites: int | None, seed: int
) -> tuple[list[int], list[int | None]]:
    """Class index and site index (or None) per subject.

    Classes are balanced: after a seeded shuffle, the i-th subject gets class i mod n.
    Sites get near-equal numbers of subjects and site k over-represents class k mod n.
    """
    rng = np.random.default_rng([seed, 0])
    order = rng.permutation(num_subjects)
    cls = [0] * num_subjects
    for i, s in enumerate(order):
        cls[int(s)] = i % len(classes)
    if sites is None:
        return cls, [None] * num_subjects
    remaining = np.array(
        [num_subjects // sites + (k < num_subjects % sites) for k in range(sites)], float
    )
    site: list[int | None] = [None] * num_subjects
    for s in rng.permutation(num_subjects):
        favour = np.where(np.arange(sites) % len(classes) == cls[int(s)], 3.0, 1.0)
        w = remaining * favour
        k = int(rng.choice(sites, p=w / w.sum()))
        site[int(s)] = k
        remaining[k] -= 1
    return cls, site


def generate_tug_dataset(
    root: str | Path,
    *,
    num_subjects: int = 24,
    recordings_per_subject: int = 2,
    classes: Sequence[str] = ("low", "medium", "high"),
    sites: int | None = None,
    fps: float = 30.0,
    image_size: tuple[int, int] = (1280, 720),
    missing_rate: float = 0.03,
    noise_px: float = 2.0,
    seed: int = 0,
    nuisance: float | dict[str, float] = 0.0,
) -> Path:
    """Write a synthetic TUG dataset in the on-disk format (see :mod:`..format`).

    Args:
        root: output folder (created); gets ``labels.csv`` and ``<recording>.npz``.
        num_subjects: number of subjects, named ``s001``, ``s002``, ...
        recordings_per_subject: recordings per subject, named ``s001_r1``, ...
        classes: severity classes, mildest first; each subject has one, balanced
            across subjects (the first maps to severity 0, the last to 2).
        sites: ``None`` for no ``site`` column; ``k`` to spread subjects over ``site1``
            .. ``site<k>``, each with its own camera set-up and a severity mix that
            favours class ``k mod len(classes)``.
        fps: frames per second; a recording lasts 10-20 s.
        image_size: ``(width, height)`` in pixels; the person is ~40-60% of the height.
        missing_rate: probability that the detector misses a joint in a frame
            (written as x = y = confidence = 0); short runs of wholly missed frames
            are added at a rate proportional to it.
        noise_px: standard deviation of the detector's pixel noise on x and y.
        seed: seeds everything; subject ``i``'s data depends only on ``(seed, i)``
            (and its class / site), so adding subjects leaves earlier ones unchanged.
        nuisance: strength of subject-level traits unrelated to the label (0: none,
            the output of earlier versions bit for bit; 1: the level meant to make a
            model that memorises subjects fail on held-out ones), a number for every
            part or a dict ``{part: strength}`` over :data:`NUISANCE_PARTS`:
            ``body`` (limb and head proportions), ``style`` (posture offsets, personal
            cadence / step / arm swing / sway / sit-to-stand speed, left-right
            asymmetries, a preferred turning side), ``camera`` (each subject filmed
            from their own camera distance, height, angle, framing and roll, sometimes
            from the other side of the walkway), ``tracking`` (the subject's detector
            noise level, slow tracking drift, per-joint offsets as loose clothing
            gives, brief left/right limb swaps) and ``missing`` (a per-subject
            missed-joint rate, mean ``missing_rate``, with its own per-joint profile,
            far-side joints and runs of lost frames). Drawn from ``(seed, subject)``
            only, never from the class; all recordings of a subject share them.

    Returns:
        ``root`` as a :class:`~pathlib.Path`. Keypoints are float32 ``(T, 17, 3)``
        (COCO-17, x/y pixels from the top-left, confidence in [0, 1]).
    """
    classes, image_size, strength = _checked_settings(
        num_subjects,
        recordings_per_subject,
        classes,
        sites,
        fps,
        missing_rate,
        noise_px,
        image_size,
        nuisance,
    )
    with_nuisance = any(v > 0 for v in strength.values())
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    cls, site = _assign(num_subjects, classes, sites, seed)
    cameras = [_site_camera(np.random.default_rng([seed, 3, k])) for k in range(sites or 1)]
    width_s = max(3, len(str(num_subjects)))
    rows: list[LabelRow] = []
    for i in range(num_subjects):
        subject = f"s{i + 1:0{width_s}d}"
        z_mean = 2.0 * cls[i] / (len(classes) - 1) if len(classes) > 1 else 0.0
        style = _subject_style(np.random.default_rng([seed, 1, i]), z_mean)
        cam = cameras[site[i] or 0]
        nz = _subject_nuisance(seed, i, strength) if with_nuisance else None
        if nz is not None:
            cam = _subject_camera(cam, nz)
        for r in range(recordings_per_subject):
            name = f"{subject}_r{r + 1}"
            kp = _recording_keypoints(
                style,
                cam,
                nz,
                np.random.default_rng([seed, 2, i, r]),
                np.random.default_rng([seed, 5, i, r]) if nz is not None else None,
                fps=fps,
                image_size=image_size,
                missing_rate=missing_rate,
                noise_px=noise_px,
            )
            write_recording(
                root / f"{name}.npz",
                kp,
                layout=COCO17.name,
                fps=fps,
                image_size=image_size,
                generator=GENERATOR,
                seed=seed,
            )
            site_name = None if site[i] is None else f"site{site[i] + 1}"
            rows.append(LabelRow(name, subject, classes[cls[i]], site_name))
    write_labels(root, rows)
    return root


def _checked_settings(
    num_subjects: int,
    recordings_per_subject: int,
    classes: Sequence[str],
    sites: int | None,
    fps: float,
    missing_rate: float,
    noise_px: float,
    image_size: tuple[int, int],
    nuisance: float | dict[str, float],
) -> tuple[tuple[str, ...], tuple[int, int], dict[str, float]]:
    """Check :func:`generate_tug_dataset`'s settings (ValueError naming the first bad
    one); returns the classes as strings, ``image_size`` as ints and the nuisance
    strength of every part."""
    classes = tuple(str(c) for c in classes)
    if num_subjects < 1 or recordings_per_subject < 1:
        raise ValueError("num_subjects and recordings_per_subject must be at least 1")
    if not classes or len(set(classes)) != len(classes):
        raise ValueError(f"classes must be distinct and non-empty; got {classes}")
    if sites is not None and not 1 <= sites <= num_subjects:
        raise ValueError(f"sites must be None or between 1 and num_subjects; got {sites}")
    if not fps > 0:
        raise ValueError(f"fps must be positive; got {fps}")
    if not 0 <= missing_rate < 1:
        raise ValueError(f"missing_rate must be in [0, 1); got {missing_rate}")
    if noise_px < 0:
        raise ValueError(f"noise_px must be >= 0; got {noise_px}")
    strength = _nuisance_strengths(nuisance)
    width, height = (int(v) for v in image_size)
    if width <= 0 or height <= 0:
        raise ValueError(f"image_size must be positive (width, height); got {image_size}")
    return classes, (width, height), strength


def _recording_keypoints(
    style: _Style,
    cam: _Camera,
    nz: _Nuisance | None,
    rng: np.random.Generator,
    nrng: np.random.Generator | None,
    *,
    fps: float,
    image_size: tuple[int, int],
    missing_rate: float,
    noise_px: float,
) -> np.ndarray:
    """One recording's detected keypoints (T, 17, 3): its motion drawn from the
    subject's ``style`` (and nuisance ``nz``), simulated, filmed by ``cam`` jittered and
    detected. ``rng`` (and ``nrng`` with nuisance) are the recording's own generators;
    the draws are made in this order: motion, nuisance, camera jitter, detector."""
    motion = _recording_motion(style, rng)
    if nz is not None:
        _apply_nuisance(motion, nz, nrng)  # type: ignore[arg-type]
    world = _simulate(motion, fps)
    if nz is not None:
        _add_bias(world, nz.bias)
    uv, vis, inside = _project(world, _jitter_camera(cam, rng), image_size)
    return _detect(
        uv,
        vis,
        inside,
        rng,
        missing_rate=missing_rate,
        noise_px=noise_px,
        image_size=image_size,
        nuisance=nz,
        nuisance_rng=nrng,
    )


def _settings_key(kwargs: dict[str, object]) -> tuple[dict[str, object], str]:
    """The full settings (defaults filled in) and a short hash naming them."""
    sig = inspect.signature(generate_tug_dataset)
    bound = sig.bind(None, **kwargs)  # TypeError for unknown arguments
    bound.apply_defaults()
    settings = {k: v for k, v in bound.arguments.items() if k != "root"}
    settings["classes"] = [str(c) for c in settings["classes"]]  # type: ignore[union-attr]
    settings["image_size"] = [int(v) for v in settings["image_size"]]  # type: ignore[union-attr]
    for key in ("fps", "missing_rate", "noise_px"):
        settings[key] = float(settings[key])  # type: ignore[arg-type]
    strength = _nuisance_strengths(settings["nuisance"])  # type: ignore[arg-type]
    settings["nuisance"] = strength
    keyed = dict(settings)
    if not any(strength.values()):
        del keyed["nuisance"]  # no nuisance: the folder names of earlier versions
    blob = json.dumps({"version": GENERATOR_VERSION, **keyed}, sort_keys=True, default=str)
    return settings, hashlib.sha256(blob.encode()).hexdigest()[:12]


def ensure_synthetic_tug(cache_dir: str | Path | None = None, **kwargs: object) -> Path:
    """Return a cached synthetic TUG dataset, generating it on first use.

    ``kwargs`` are :func:`generate_tug_dataset`'s (except ``root``); the folder is
    ``<cache_dir>/tug-<hash of the settings>``, where ``cache_dir`` defaults to
    ``$LBP_CACHE/synthetic`` or else ``~/.cache/lbp_motion/synthetic``. Safe when
    several processes ask at once: each generates into a temporary sibling and renames
    it into place; a loser of the race discards its copy. A folder that exists is
    complete.
    """
    settings, key = _settings_key(kwargs)
    return ensure_generated(
        f"tug-{key}", lambda folder: generate_tug_dataset(folder, **settings), cache_dir
    )  # type: ignore[arg-type]
