"""A seeded generator of synthetic EmoPain-format body-movement data.

It writes the EmoPain 2020 challenge layout (docs/emopain.md): ``root/train/`` and
``root/validation/``, one file per participant and exercise level (``P001N.mat``,
``P001D.mat``, ``C001N.mat``, ...), each a T x 78 matrix at 60 Hz with the challenge's
columns (22 joints X/Y/Z blocked, 4 sEMG, exercise type, pain level, protective
behaviour, 5 protective types).

The person is a kinematic stick figure on the SPEC's 22-joint graph, in metres, ``Y`` up
and ``X``/``Z`` horizontal (the floor is ``Y = 0``). A recording is a sequence of
exercise instances following a protocol loop (standing still, one-leg stand, reach
forward, bend, walking, stand-to-sit, sitting still, sit-to-stand) started at a random
point, with stretches of "other" (0) movement between them. Instances last a few
seconds (transfers) to tens of seconds (walking, repeated bends or reaches).

Labels:

* pain is per instance: controls 0; a patient's latent pain (0/1/2) is drawn from a
  personal distribution, tilted up by painful exercises (bend, sit-to-stand, ...) and
  the difficult level; a share of instances is *not reported* (-1). The latent level
  still drives the motion. Train and validation have their own profiles, after SPEC's
  frame shares (train 24 / 11 / 9 % no / low / high with 56 % unreported; validation
  mostly no pain, fully reported);
* protective behaviour comes in episodes inside patients' instances (rare in controls),
  more likely with pain and in demanding exercises, about 19 % of train frames and 7 %
  of validation frames; an episode carries one or more of the five types.

What the labels do to the motion (learnable, but overlapped by per-subject style and
noise): higher pain is slower, smaller, more trunk lean and sway, more sEMG; protective
behaviour reduces range and speed, stiffens the body (less posture variability, less arm
swing and trunk rotation, the lumbar spine moving en bloc, raised shoulders, absent
flexion-relaxation), and by type adds pauses (hesitation), hands on the thighs
(support/bracing), jerks (abrupt motion) or a hand on the lower back (rubbing). sEMG
channels are rectified envelopes in millivolts (> 0) that follow trunk load, arm
elevation, pain and guarding. Per-subject style: height 1.55-1.90 m, proportions,
speed, range, flexibility, arm swing, posture, sway, sEMG gains; 3 mm marker noise.

Public API: :func:`generate_emopain_dataset` and :func:`ensure_synthetic_emopain`.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from pathlib import Path

import numpy as np

from lbp_motion.datasets.emopain import build_emopain_matrix, write_emopain_csv, write_emopain_mat
from lbp_motion.datasets.synthetic.cache import ensure_generated
from lbp_motion.datasets.synthetic.emopain_model import (
    _PROFILES,
    OTHER,
    SIT_TO_STAND,
    SITTING,
    _plan,
    _Profile,
    _Subject,
    _subject,
)
from lbp_motion.datasets.synthetic.emopain_motion import (
    _TRACKS,
    _emg,
    _forward_kinematics,
    _instance_motion,
    _protective_extras,
    _smooth,
    _smooth_noise,
)

__all__ = ["generate_emopain_dataset", "ensure_synthetic_emopain", "GENERATOR", "GENERATOR_VERSION"]

GENERATOR = "lbp_motion.synthetic.emopain"
#: Bump when the motion or label model changes: cached folders are keyed on it.
GENERATOR_VERSION = 1


def _recording(
    subj: _Subject,
    profile: _Profile,
    difficult: bool,
    frames: int,
    fps: float,
    noise_m: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """One file's (frames, 78) matrix."""
    plan = _plan(rng, subj, profile, difficult, frames, fps)
    first = plan[0].exercise if plan[0].exercise != OTHER else plan[1].exercise
    seated = first in (SITTING, SIT_TO_STAND)
    parts: list[dict[str, np.ndarray]] = []
    for inst in plan:
        tr, seated = _instance_motion(inst, subj, rng, fps, seated, difficult)
        parts.append(tr)
    tr = {k: np.concatenate([p[k] for p in parts])[:frames] for k in _TRACKS}
    exercise = np.concatenate([np.full(i.n, i.exercise) for i in plan])[:frames]
    label = np.concatenate([np.full(i.n, i.label) for i in plan])[:frames]
    pain = np.concatenate([np.full(i.n, float(i.pain)) for i in plan])[:frames]
    prot = np.concatenate([i.protective for i in plan])[:frames]
    types = np.concatenate([i.types for i in plan])[:frames]
    guard = _smooth(prot * types[:, 0], fps, 0.2)
    _protective_extras(tr, types, prot, rng, fps)
    # posture variability (less when stiff), then smooth the joins between instances
    for k in (
        "alpha_r",
        "alpha_l",
        "kappa_r",
        "kappa_l",
        "beta_r",
        "beta_l",
        "eps_r",
        "eps_l",
        "phi",
        "nu",
        "tau",
    ):
        tr[k] = tr[k] + _smooth_noise(rng, frames, fps, 0.8, 0.03) * (1 - 0.7 * guard)
    for k in _TRACKS:
        if k not in ("vel", "turn"):
            tr[k] = _smooth(tr[k], fps, 0.06)
    for k in ("kappa_r", "kappa_l"):
        tr[k] = np.maximum(tr[k], 0.0)
    start = np.array([rng.uniform(-1, 1), 0.0, rng.uniform(-1, 1)])
    coords = _forward_kinematics(tr, subj, fps, start, float(rng.uniform(0, 2 * np.pi)))
    coords += rng.normal(0, noise_m, size=coords.shape)
    emg = _emg(tr, _smooth(pain, fps, 0.3), guard, subj, rng, fps)
    return build_emopain_matrix(coords, emg, exercise, label, prot, types)


# --------------------------------------------------------------------------------------
# datasets
# --------------------------------------------------------------------------------------


def generate_emopain_dataset(
    root: str | Path,
    *,
    num_train_patients: int = 10,
    num_train_controls: int = 6,
    num_val_patients: int = 4,
    num_val_controls: int = 3,
    frames_per_file: int = 3600,
    fps: float = 60.0,
    noise_mm: float = 3.0,
    fmt: str = "mat",
    seed: int = 0,
) -> Path:
    """Write a synthetic dataset in the EmoPain challenge layout.

    Args:
        root: output folder (created); gets ``train/`` and ``validation/``.
        num_train_patients, num_train_controls: participants in ``train/`` (SPEC: 10, 6),
            named ``P001``.. and ``C001``..
        num_val_patients, num_val_controls: participants in ``validation/`` (SPEC: 4, 3),
            numbered on from the train ones.
        frames_per_file: frames per file (default 3600 = 60 s at 60 Hz: about one pass
            over the protocol's eight exercises).
        fps: frame rate (Hz); durations are in seconds.
        noise_mm: standard deviation of the coordinate noise, in millimetres.
        fmt: ``mat`` (MATLAB v5, key ``data``) or ``csv`` (with a header line).
        seed: seeds everything; a participant's files depend only on ``(seed, group,
            number)`` and its split.

    Returns:
        ``root``. Each participant has two files, ``<id>N`` (normal) and ``<id>D``
        (difficult level: larger movements, more pain and protective behaviour).
        Coordinates are in metres, Y up, the floor at Y = 0; sEMG in mV.
    """
    if fmt not in ("mat", "csv"):
        raise ValueError(f"fmt must be 'mat' or 'csv'; got {fmt!r}")
    counts = (num_train_patients, num_train_controls, num_val_patients, num_val_controls)
    if min(counts) < 0 or num_train_patients + num_train_controls < 1:
        raise ValueError(
            f"participant counts must be >= 0 with at least one in train; got {counts}"
        )
    if frames_per_file < 1 or not fps > 0 or noise_mm < 0:
        raise ValueError(
            f"frames_per_file ({frames_per_file}), fps ({fps}) must be positive and noise_mm ({noise_mm}) >= 0"
        )
    root = Path(root)
    plan = []
    for group, n_train, n_val in (
        ("P", num_train_patients, num_val_patients),
        ("C", num_train_controls, num_val_controls),
    ):
        width = max(3, len(str(n_train + n_val)))
        for i in range(n_train + n_val):
            split = "train" if i < n_train else "validation"
            plan.append((split, group, i + 1, f"{group}{i + 1:0{width}d}"))
    for split, group, number, subject in plan:
        profile = _PROFILES[split]
        srng = np.random.default_rng([seed, ord(group), number, 0 if split == "train" else 1])
        subj = _subject(srng, group == "P", profile)
        for li, level in enumerate("ND"):
            rng = np.random.default_rng([seed, ord(group), number, 10 + li])
            matrix = _recording(
                subj,
                profile,
                level == "D",
                int(frames_per_file),
                float(fps),
                noise_mm / 1000.0,
                rng,
            )
            matrix[:, :66] = np.round(matrix[:, :66], 4)  # 0.1 mm: well below the noise, compresses
            matrix[:, 66:70] = np.round(matrix[:, 66:70], 5)
            path = root / split / f"{subject}{level}.{fmt}"
            if fmt == "mat":
                write_emopain_mat(path, matrix, validate=False, compress=True)
            else:
                write_emopain_csv(path, matrix, validate=False)
    return root


def _settings_key(kwargs: dict[str, object]) -> tuple[dict[str, object], str]:
    """The full settings (defaults filled in) and a short hash naming them."""
    bound = inspect.signature(generate_emopain_dataset).bind(
        None, **kwargs
    )  # TypeError for unknown arguments
    bound.apply_defaults()
    settings = {k: v for k, v in bound.arguments.items() if k != "root"}
    for key in ("fps", "noise_mm"):
        settings[key] = float(settings[key])  # type: ignore[arg-type]
    blob = json.dumps(
        {"generator": GENERATOR, "version": GENERATOR_VERSION, **settings},
        sort_keys=True,
        default=str,
    )
    return settings, hashlib.sha256(blob.encode()).hexdigest()[:12]


def ensure_synthetic_emopain(cache_dir: str | Path | None = None, **kwargs: object) -> Path:
    """Return a cached synthetic EmoPain dataset, generating it on first use.

    ``kwargs`` are :func:`generate_emopain_dataset`'s (except ``root``); the folder is
    ``<cache_dir>/emopain-<hash of the settings and generator version>``, where
    ``cache_dir`` defaults to ``$LBP_CACHE/synthetic`` or else
    ``~/.cache/lbp_motion/synthetic`` (as for the TUG data). Safe when several processes
    ask at once: each generates into a temporary sibling and renames it into place; a
    loser of the race discards its copy. A folder that exists is complete.
    """
    settings, key = _settings_key(kwargs)
    return ensure_generated(
        f"emopain-{key}", lambda folder: generate_emopain_dataset(folder, **settings), cache_dir
    )  # type: ignore[arg-type]
