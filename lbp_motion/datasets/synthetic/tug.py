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
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lbp_motion.datasets.format import LabelRow, write_labels, write_recording
from lbp_motion.datasets.layouts import COCO17
from lbp_motion.datasets.synthetic.cache import ensure_generated

__all__ = ["generate_tug_dataset", "ensure_synthetic_tug", "GENERATOR", "GENERATOR_VERSION", "NUISANCE_PARTS"]

GENERATOR = "lbp_motion.synthetic.tug"
#: Bump when the motion model changes: cached folders are keyed on it.
GENERATOR_VERSION = 1

# Recording length bounds in seconds (idle time is stretched / the motion compressed
# to stay inside them).
_MIN_DURATION_S = 10.0
_MAX_DURATION_S = 19.8

_REF_HEIGHT_M = 1.70  # reference body height for the camera scale
_WALKWAY_MID_M = 1.55  # x of the walkway centre (chair seat at x = 0)
_TURN_X_M = 2.6  # pelvis x where the outward walk ends (the 3 m line minus the feet and a step)

_J = {name: i for i, name in enumerate(COCO17.joints)}


# --------------------------------------------------------------------------------------
# small numeric helpers (all vectorised over frames)
# --------------------------------------------------------------------------------------


def _sstep(x: np.ndarray) -> np.ndarray:
    """Smoothstep: 0 below 0, 1 above 1, C1-smooth in between."""
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _trapezoid_distance(t: np.ndarray, v: float, ramp: float, dur: float) -> np.ndarray:
    """Distance (m) covered after ``t`` seconds of a trapezoidal speed profile that
    ramps 0 -> ``v`` over ``ramp`` s, holds, and ramps back to 0 at ``dur``."""
    t = np.clip(t, 0.0, dur)
    total = v * (dur - ramp)
    d = np.where(t < ramp, v * t * t / (2 * ramp), v * (t - ramp / 2))
    return np.where(t > dur - ramp, total - v * (dur - t) ** 2 / (2 * ramp), d)


def _trapezoid_speed(t: np.ndarray, ramp: float, dur: float) -> np.ndarray:
    """The trapezoid's speed relative to its maximum, in [0, 1]."""
    return np.clip(np.minimum(t, dur - t) / ramp, 0.0, 1.0)


def _heading_axes(theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Forward and left unit vectors (T, 3) for a heading ``theta`` (rad) about +y.

    ``theta = 0`` faces +x (walking out, away from the chair); left = up x forward.
    """
    c, s = np.cos(theta), np.sin(theta)
    zero = np.zeros_like(theta)
    return np.stack([c, zero, s], -1), np.stack([s, zero, -c], -1)


def _two_link(
    root: np.ndarray, target: np.ndarray, l1: float, l2: float, bend: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Analytic two-segment IK (e.g. hip-knee-ankle), vectorised: ``root``, ``target``
    and ``bend`` are (T, 3); the middle joint bends towards ``bend``. Targets out of
    reach are pulled in. Returns (middle, end) positions (T, 3)."""
    d = target - root
    dist = np.linalg.norm(d, axis=-1, keepdims=True)
    e = d / np.maximum(dist, 1e-9)
    dist = np.clip(dist, abs(l1 - l2) + 1e-6, (l1 + l2) * (1 - 1e-6))
    n = bend - np.sum(bend * e, axis=-1, keepdims=True) * e
    n = n / np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-9)
    cos_b = np.clip((l1 * l1 + dist * dist - l2 * l2) / (2 * l1 * dist), -1.0, 1.0)
    mid = root + l1 * (cos_b * e + np.sqrt(1 - cos_b * cos_b) * n)
    return mid, root + dist * e


# --------------------------------------------------------------------------------------
# subjects, recordings and cameras
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Style:
    """Per-subject constants: body height (m), latent severity, personal factors."""

    height: float
    z: float
    speed: float
    arm: float
    lean: float
    cadence_noise: float
    sts: float


def _subject_style(rng: np.random.Generator, z_mean: float) -> _Style:
    return _Style(
        height=float(np.clip(rng.normal(1.70, 0.085), 1.50, 1.95)),
        z=float(np.clip(z_mean + rng.normal(0.0, 0.3), -0.5, 2.8)),
        speed=float(np.exp(rng.normal(0.0, 0.07))),
        arm=float(np.exp(rng.normal(0.0, 0.2))),
        lean=float(rng.normal(0.0, 0.03)),
        cadence_noise=float(rng.normal(0.0, 0.05)),
        sts=float(np.exp(rng.normal(0.0, 0.1))),
    )


@dataclass
class _Motion:
    """Everything the kinematic model needs for one recording (SI units, radians)."""

    # body (m)
    height: float
    ankle_h: float
    shank: float
    thigh: float
    hip_hw: float
    torso: float
    shoulder_hw: float
    upper_arm: float
    forearm: float
    neck: float
    # gait
    cadence: float  # steps / s
    step: float  # m
    hip_amp: float
    knee_amp: float
    knee0: float
    arm_amp: float
    elbow0: float
    trunk_lean: float
    trunk_sway: float
    pelvis_rot: float
    shoulder_rot: float
    ramp: float  # s, walking acceleration
    # sit-to-stand / stand-to-sit
    t_sts: float
    t_sit: float
    sts_peak: float
    sit_peak: float
    seat_off: float
    push: float  # 0..1: hands push on the thighs
    trunk_sit: float
    # turns
    t_turn1: float
    t_turn2: float
    turn_cadence: float
    multi_step: float
    turn_dir1: float
    turn_dir2: float
    lead_shoulder: float  # s
    lead_head: float  # s
    head_pitch: float
    phase0: float
    # idle
    idle0: float
    idle1: float
    # subject-level nuisance (``nuisance`` setting): None = the default model
    extra: _StyleExtra | None = None


def _recording_motion(style: _Style, rng: np.random.Generator) -> _Motion:
    """Draw the motion parameters of one recording from the subject's style."""
    z = style.z
    h = style.height

    def jit(sd: float) -> float:
        return float(np.exp(rng.normal(0.0, sd)))

    cadence = (1.92 - 0.35 * z + style.cadence_noise) * style.speed * jit(0.03)
    cadence = float(np.clip(cadence, 0.85, 2.3))
    step = float(np.clip((0.39 - 0.045 * z) * h * np.sqrt(style.speed) * jit(0.03), 0.3, 0.85))
    leg = 0.49 * h
    hip_amp = float(np.arcsin(np.clip(step / (2 * leg), 0.05, 0.6)))
    t_sts = float(np.clip((1.2 + 0.62 * z) * style.sts * jit(0.06), 0.8, 3.6))
    t_turn1 = float(np.clip((0.9 + 0.5 * z) / style.speed * jit(0.08), 0.7, 3.2))
    push = float(1.0 / (1.0 + np.exp(-(z - 1.45) / 0.2)))
    return _Motion(
        height=h,
        ankle_h=0.039 * h,
        shank=0.246 * h,
        thigh=0.245 * h,
        hip_hw=0.055 * h,
        torso=0.288 * h,
        shoulder_hw=0.1 * h,
        upper_arm=0.186 * h,
        forearm=0.146 * h,
        neck=0.105 * h,
        cadence=cadence,
        step=step,
        hip_amp=hip_amp,
        knee_amp=float(np.clip(1.05 - 0.2 * z, 0.35, 1.2) * jit(0.05)),
        knee0=float(np.clip(0.06 + 0.04 * z + rng.normal(0, 0.01), 0.02, 0.25)),
        arm_amp=float(np.clip((0.42 - 0.17 * z) * style.arm * jit(0.08), 0.02, 0.7)),
        elbow0=float(np.clip(0.25 + 0.15 * z + rng.normal(0, 0.03), 0.1, 0.9)),
        trunk_lean=float(np.clip(0.05 + 0.09 * z + style.lean + rng.normal(0, 0.015), -0.05, 0.5)),
        trunk_sway=float(np.clip(0.035 * (1 - 0.4 * z), 0.004, 0.06)),
        pelvis_rot=float(np.clip(0.12 * (1 - 0.4 * z), 0.01, 0.2)),
        shoulder_rot=float(np.clip(0.10 * (1 - 0.4 * z), 0.01, 0.2)),
        ramp=float(np.clip(0.45 + 0.2 * z, 0.35, 1.1)),
        t_sts=t_sts,
        t_sit=t_sts * 1.1 * jit(0.05),
        sts_peak=float(np.clip(0.65 + 0.22 * z + rng.normal(0, 0.04), 0.4, 1.3)),
        sit_peak=float(np.clip(0.6 + 0.2 * z + rng.normal(0, 0.04), 0.4, 1.3)),
        seat_off=float(np.clip(0.35 + 0.08 * z, 0.3, 0.6)),
        push=push,
        trunk_sit=float(rng.normal(0.06, 0.03)),
        t_turn1=t_turn1,
        t_turn2=t_turn1 * 0.9 * jit(0.06),
        turn_cadence=cadence * float(np.clip(0.95 - 0.08 * z, 0.7, 1.0)),
        multi_step=float(np.clip((z - 0.5) / 1.2, 0.0, 1.0)),
        turn_dir1=float(rng.choice([-1.0, 1.0])),
        turn_dir2=float(rng.choice([-1.0, 1.0])),
        lead_shoulder=float(np.clip(0.12 * (1 - 0.45 * z), 0.0, 0.2)),
        lead_head=float(np.clip(0.22 * (1 - 0.4 * z), 0.02, 0.3)),
        head_pitch=float(np.clip(0.05 + 0.08 * z + rng.normal(0, 0.03), -0.1, 0.4)),
        phase0=float(rng.choice([0.0, np.pi])),
        idle0=float(rng.uniform(0.4, 1.2)),
        idle1=float(rng.uniform(0.4, 1.2)),
    )


@dataclass(frozen=True)
class _Camera:
    """Side camera: distance ``dist`` (m) to the walkway, ``yaw`` (rad) off
    perpendicular, ``side`` +1/-1 (which side of the walkway), person height fraction
    ``frac`` of the image height, image offsets ``du``, ``dv`` (fractions of width /
    height), lens height ``cam_h`` (m) and ``roll`` (rad, the image rotated about its
    centre; 0 in the default model)."""

    dist: float
    yaw: float
    side: float
    frac: float
    du: float
    dv: float
    cam_h: float
    roll: float = 0.0


def _site_camera(rng: np.random.Generator) -> _Camera:
    return _Camera(
        dist=float(rng.uniform(5.5, 8.0)),
        yaw=float(rng.uniform(0.2, 0.42) * rng.choice([-1.0, 1.0])),
        side=float(rng.choice([-1.0, 1.0])),
        frac=float(rng.uniform(0.47, 0.57)),
        du=float(rng.uniform(-0.06, 0.06)),
        dv=float(rng.uniform(-0.05, 0.05)),
        cam_h=float(rng.uniform(0.8, 1.3)),
    )


def _jitter_camera(cam: _Camera, rng: np.random.Generator) -> _Camera:
    """Small per-recording changes (the tripod is never put back exactly)."""
    return _Camera(
        dist=cam.dist * float(np.exp(rng.normal(0, 0.02))),
        yaw=cam.yaw + float(rng.normal(0, 0.02)),
        side=cam.side,
        frac=cam.frac,
        du=cam.du + float(rng.normal(0, 0.01)),
        dv=cam.dv + float(rng.normal(0, 0.01)),
        cam_h=cam.cam_h + float(rng.normal(0, 0.02)),
        roll=cam.roll,
    )


# --------------------------------------------------------------------------------------
# the kinematic model
# --------------------------------------------------------------------------------------


@dataclass
class _World:
    """World joint positions ``xyz`` (T, 17, 3) in metres and the per-frame frames
    used to decide which side faces the camera: ``forward`` / ``left`` (T, 17, 3)."""

    xyz: np.ndarray
    forward: np.ndarray
    left: np.ndarray


def _segment_durations(m: _Motion) -> np.ndarray:
    """Durations (s) of [idle, sit-to-stand, walk out, turn, walk back, turn,
    stand-to-sit, idle], keeping the total within the recording bounds."""
    x_stand = m.thigh * 0.85 + m.shank * np.sin(m.knee0)
    speed = m.cadence * m.step
    d1 = _TURN_X_M - x_stand
    d2 = _TURN_X_M + 0.12 - (x_stand + 0.22)
    motion = np.array([m.t_sts, d1 / speed + m.ramp, m.t_turn1, d2 / speed + m.ramp, m.t_turn2, m.t_sit])
    idle = np.array([m.idle0, m.idle1])
    total = motion.sum() + idle.sum()
    if total > _MAX_DURATION_S:
        idle = np.maximum(idle - (total - _MAX_DURATION_S) / 2, 0.3)
        if motion.sum() + idle.sum() > _MAX_DURATION_S:
            k = motion.sum() / (_MAX_DURATION_S - idle.sum())
            _speed_up(m, k)  # every motion segment (incl. walking) gets k times shorter
            motion = motion / k
    elif total < _MIN_DURATION_S:
        idle = idle + (_MIN_DURATION_S - total) / 2 + 0.05
    return np.array([idle[0], *motion, idle[1]])


def _speed_up(m: _Motion, k: float) -> None:
    """Make the recording ``k`` times faster (used to respect the length bound)."""
    m.cadence *= k
    m.turn_cadence *= k
    m.ramp /= k
    m.t_sts /= k
    m.t_sit /= k
    m.t_turn1 /= k
    m.t_turn2 /= k


def _simulate(m: _Motion, fps: float) -> _World:
    """Kinematics of one TUG trial: world joints (T, 17, 3) in metres."""
    dur = _segment_durations(m)
    starts = np.concatenate([[0.0], np.cumsum(dur)])
    n = int(round(starts[-1] * fps))
    t = np.arange(n) / fps
    seg = np.clip(np.searchsorted(starts[1:], t, side="right"), 0, len(dur) - 1)
    tl = t - starts[seg]
    p = np.clip(tl / dur[seg], 0.0, 1.0)
    IDLE0, STS, WALK1, TURN1, WALK2, TURN2, SIT, IDLE1 = range(8)
    is_ = [seg == k for k in range(8)]

    x_feet = m.thigh * 0.85
    x_stand = x_feet + m.shank * np.sin(m.knee0)
    h_stand = m.ankle_h + m.thigh + m.shank * np.cos(m.knee0)
    h_seat = m.ankle_h + 0.97 * m.shank
    speed = m.cadence * m.step
    x_turn2 = _TURN_X_M + 0.12

    # ---- gait phase and amplitude -------------------------------------------------
    walking = is_[WALK1] | is_[WALK2]
    turning = is_[TURN1] | is_[TURN2]
    cad = np.where(walking, m.cadence, np.where(turning, m.turn_cadence, 0.0))
    phi = m.phase0 + np.cumsum(np.pi * cad / fps)  # one stride (2 steps) = 2 pi
    g = np.zeros(n)
    g = np.where(walking, _trapezoid_speed(tl, m.ramp, dur[seg]), g)
    g = np.where(turning, 0.55 * np.sin(np.pi * p) ** 0.6, g)

    # ---- heading ----------------------------------------------------------------
    n_steps = max(2, int(round(m.t_turn1 * m.turn_cadence)))
    frac = p * n_steps
    stair = (np.floor(frac) + _sstep(frac - np.floor(frac))) / n_steps
    prog = (1 - m.multi_step) * _sstep(p) + m.multi_step * np.minimum(stair, 1.0)
    th1, th2 = m.turn_dir1 * np.pi, m.turn_dir1 * np.pi + m.turn_dir2 * np.pi
    theta = np.select(
        [is_[TURN1], is_[WALK2], is_[TURN2], is_[SIT] | is_[IDLE1]],
        [th1 * prog, np.full(n, th1), th1 + (th2 - th1) * prog, np.full(n, th2)],
        0.0,
    )
    theta_pelvis = theta + m.pelvis_rot * g * np.sin(phi)
    theta_sh = np.interp(t + m.lead_shoulder, t, theta) - m.shoulder_rot * g * np.sin(phi)
    theta_head = np.interp(t + m.lead_head, t, theta)

    # ---- pelvis path ----------------------------------------------------------------
    p_so = m.seat_off
    px = np.select(
        [
            is_[STS],
            is_[WALK1],
            is_[TURN1],
            is_[WALK2],
            is_[TURN2],
            is_[SIT],
        ],
        [
            x_stand * _sstep((p - 0.8 * p_so) / (1 - 0.8 * p_so)),
            x_stand + _trapezoid_distance(tl, speed, m.ramp, dur[WALK1]),
            _TURN_X_M + 0.12 * _sstep(p),
            x_turn2 - _trapezoid_distance(tl, speed, m.ramp, dur[WALK2]),
            x_stand + 0.22 * (1 - _sstep(p)),
            x_stand * (1 - _sstep((p - 0.05) / 0.6)),
        ],
        0.0,
    )
    pz = np.where(is_[TURN1], m.turn_dir1 * 0.10 * np.sin(np.pi * p), 0.0)
    pz = np.where(is_[TURN2], m.turn_dir2 * 0.08 * np.sin(np.pi * p), pz)

    # ---- legs: forward kinematics while on the feet ----------------------------------
    alpha = np.stack([g * m.hip_amp * np.sin(phi), g * m.hip_amp * np.sin(phi + np.pi)], -1)
    ex = m.extra
    if ex is not None:
        alpha = alpha * np.array(ex.leg)
    swing = np.stack([np.cos(phi), np.cos(phi + np.pi)], -1)
    kappa = m.knee0 + g[:, None] * m.knee_amp * np.clip(swing, 0, None) ** 1.5
    ext = m.thigh * np.cos(alpha) + m.shank * np.cos(alpha - kappa)
    py_walk = m.ankle_h + ext.max(-1)
    py = np.select(
        [is_[IDLE0] | is_[IDLE1], is_[STS], is_[SIT]],
        [
            np.full(n, h_seat),
            h_seat + (h_stand - h_seat) * _sstep((p - p_so) / (1 - p_so)),
            h_stand - (h_stand - h_seat) * _sstep((p - 0.05) / 0.65),
        ],
        py_walk,
    )
    pelvis = np.stack([px, py, pz], -1)

    fwd_p, left_p = _heading_axes(theta_pelvis)
    fwd_s, left_s = _heading_axes(theta_sh)
    fwd_h, left_h = _heading_axes(theta_head)
    up = np.broadcast_to(np.array([0.0, 1.0, 0.0]), (n, 3))

    hips, knees, ankles = [], [], []
    seated = is_[IDLE0] | is_[STS] | is_[SIT] | is_[IDLE1]
    for k, side in enumerate((1.0, -1.0)):  # left, right
        hip = pelvis + side * m.hip_hw * left_p
        a, kp = alpha[:, k : k + 1], kappa[:, k : k + 1]
        knee_fk = hip + m.thigh * (np.sin(a) * fwd_p - np.cos(a) * up)
        ankle_fk = knee_fk + m.shank * (np.sin(a - kp) * fwd_p - np.cos(a - kp) * up)
        foot = np.stack([np.full(n, x_feet), np.full(n, m.ankle_h), np.zeros(n)], -1)
        foot = foot + side * m.hip_hw * left_p
        knee_ik, ankle_ik = _two_link(hip, foot, m.thigh, m.shank, fwd_p)
        hips.append(hip)
        knees.append(np.where(seated[:, None], knee_ik, knee_fk))
        ankles.append(np.where(seated[:, None], ankle_ik, ankle_fk))

    # ---- trunk ----------------------------------------------------------------------
    breathe = 0.012 * np.sin(2 * np.pi * t / 3.7)
    p_td = 0.7
    tau = np.select(
        [
            is_[IDLE0] | is_[IDLE1],
            is_[STS] & (p < p_so),
            is_[STS],
            walking,
            turning,
            is_[SIT] & (p < p_td),
            is_[SIT],
        ],
        [
            m.trunk_sit + breathe,
            m.trunk_sit + (m.sts_peak - m.trunk_sit) * _sstep(p / p_so),
            m.sts_peak + (m.trunk_lean - m.sts_peak) * _sstep((p - p_so) / (1 - p_so)),
            m.trunk_lean + m.trunk_sway * g * np.sin(2 * phi),
            np.full(n, m.trunk_lean),
            m.trunk_lean + (m.sit_peak - m.trunk_lean) * _sstep(p / p_td),
            m.sit_peak + (m.trunk_sit - m.sit_peak) * _sstep((p - p_td) / (1 - p_td)),
        ],
        0.0,
    )[:, None]
    shoulder_c = pelvis + m.torso * (np.sin(tau) * fwd_s + np.cos(tau) * up)
    if ex is not None:
        shoulder_c = shoulder_c + m.torso * np.sin(ex.lateral) * left_s
    shoulders = [shoulder_c + side * m.shoulder_hw * left_s for side in (1.0, -1.0)]
    if ex is not None:
        shoulders = [sh + side * 0.5 * ex.shoulder_drop * m.height * up for sh, side in zip(shoulders, (1.0, -1.0))]

    # ---- head -----------------------------------------------------------------------
    neck_dir = np.sin(0.7 * tau) * fwd_h + np.cos(0.7 * tau) * up
    head_c = shoulder_c + m.neck * neck_dir
    if ex is not None:
        head_c = head_c + m.neck * np.sin(ex.head_tilt) * left_h
    pitch = m.head_pitch + 0.2 * tau
    face_f = np.cos(pitch) * fwd_h - np.sin(pitch) * up
    face_u = np.sin(pitch) * fwd_h + np.cos(pitch) * up
    h = m.height
    nose = head_c + 0.055 * h * face_f - 0.01 * h * face_u
    eyes = [head_c + 0.045 * h * face_f + 0.012 * h * face_u + s * 0.018 * h * left_h for s in (1.0, -1.0)]
    ears = [head_c - 0.005 * h * face_f + s * 0.045 * h * left_h for s in (1.0, -1.0)]

    # ---- arms -----------------------------------------------------------------------
    # hands on the thighs while seated; with ``push`` they stay there (near the knees)
    # and push through most of the rise
    p_rel = 0.12 + 0.6 * m.push
    p_reach = 0.45 - 0.25 * m.push
    hand = np.select(
        [is_[IDLE0] | is_[IDLE1], is_[STS], is_[SIT]],
        [np.ones(n), 1 - _sstep((p - p_rel) / 0.2), _sstep((p - p_reach) / 0.25)],
        0.0,
    )[:, None]
    bump = np.exp(-(((p - p_so) / 0.18) ** 2))
    arm_bias = np.where(is_[STS], 0.5 * (1 - m.push) * bump, 0.0) + 0.25 * tau[:, 0]
    thigh_frac = 0.55 + 0.3 * m.push
    elbows, wrists = [], []
    for k, side in enumerate((1.0, -1.0)):
        arm_amp = m.arm_amp if ex is None else m.arm_amp * ex.arm[k]
        gam = (arm_bias - side * arm_amp * g * np.sin(phi))[:, None]
        eps = m.elbow0 + 0.6 * np.clip(gam, 0, None)
        out = side * (0.02 if ex is None else ex.arm_out) * h * left_s
        elbow_free = shoulders[k] + m.upper_arm * (np.sin(gam) * fwd_s - np.cos(gam) * up) + out
        wrist_free = elbow_free + m.forearm * (np.sin(gam + eps) * fwd_s - np.cos(gam + eps) * up)
        target = hips[k] + thigh_frac * (knees[k] - hips[k]) + 0.06 * h * up
        bend = -fwd_s + 0.4 * side * left_s
        elbow_ik, wrist_ik = _two_link(shoulders[k], target, m.upper_arm, m.forearm, bend)
        elbows.append((1 - hand) * elbow_free + hand * elbow_ik)
        wrists.append((1 - hand) * wrist_free + hand * wrist_ik)

    xyz = np.zeros((n, 17, 3))
    forward = np.zeros((n, 17, 3))
    left = np.zeros((n, 17, 3))
    parts = {
        "nose": (nose, fwd_h, left_h),
        "left_eye": (eyes[0], fwd_h, left_h),
        "right_eye": (eyes[1], fwd_h, left_h),
        "left_ear": (ears[0], fwd_h, left_h),
        "right_ear": (ears[1], fwd_h, left_h),
        "left_shoulder": (shoulders[0], fwd_s, left_s),
        "right_shoulder": (shoulders[1], fwd_s, left_s),
        "left_elbow": (elbows[0], fwd_s, left_s),
        "right_elbow": (elbows[1], fwd_s, left_s),
        "left_wrist": (wrists[0], fwd_s, left_s),
        "right_wrist": (wrists[1], fwd_s, left_s),
        "left_hip": (hips[0], fwd_p, left_p),
        "right_hip": (hips[1], fwd_p, left_p),
        "left_knee": (knees[0], fwd_p, left_p),
        "right_knee": (knees[1], fwd_p, left_p),
        "left_ankle": (ankles[0], fwd_p, left_p),
        "right_ankle": (ankles[1], fwd_p, left_p),
    }
    for name, (pos, f, lft) in parts.items():
        j = _J[name]
        xyz[:, j], forward[:, j], left[:, j] = pos, f, lft
    return _World(xyz, forward, left)


# --------------------------------------------------------------------------------------
# camera and detector
# --------------------------------------------------------------------------------------

# which way each joint "faces": +1 left side, -1 right side, 0 midline (face)
_SIDE = np.array([0.0 if n == "nose" else (1.0 if n.startswith("left_") else -1.0) for n in COCO17.joints])
_FACE = np.array([n in ("nose", "left_eye", "right_eye") for n in COCO17.joints])


def _project(
    world: _World, cam: _Camera, image_size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pinhole projection. Returns pixel coordinates (T, 17, 2), a visibility score
    (T, 17) in [-1, 1] (+1: the joint's side or the face turned to the camera) and a
    mask (T, 17) of joints inside the image."""
    width, height = image_size
    yaw, side = cam.yaw, cam.side
    d = np.array([-np.sin(yaw), 0.0, -side * np.cos(yaw)])  # optical axis
    r = np.array([side * np.cos(yaw), 0.0, -np.sin(yaw)])  # image right
    up = np.array([0.0, 1.0, 0.0])
    centre = np.array([_WALKWAY_MID_M, cam.cam_h, 0.0])
    pos = centre - cam.dist * d
    f = cam.frac * height * cam.dist / _REF_HEIGHT_M
    span = 3.8 * f / cam.dist  # walkway plus body in pixels
    if span > 0.9 * width:
        f *= 0.9 * width / span
    cx = width / 2 + cam.du * width
    cy = height / 2 + cam.dv * height + f * (0.5 * _REF_HEIGHT_M - cam.cam_h) / cam.dist
    rel = world.xyz - pos
    depth = np.maximum(rel @ d, 0.5)
    u = cx + f * (rel @ r) / depth
    v = cy - f * (rel @ up) / depth
    if cam.roll:
        cr, sr = np.cos(cam.roll), np.sin(cam.roll)
        du, dv = u - width / 2, v - height / 2
        u, v = width / 2 + cr * du - sr * dv, height / 2 + sr * du + cr * dv
    to_cam = -d
    lat = world.left @ to_cam
    face = world.forward @ to_cam
    vis = np.where(_FACE, 0.5 * face + 0.5 * _SIDE * lat, _SIDE * lat)
    vis[:, _J["nose"]] = face[:, _J["nose"]]
    inside = (u >= 0) & (u <= width - 1) & (v >= 0) & (v <= height - 1)
    return np.stack([u, v], -1), np.clip(vis, -1, 1), inside


def _detect(
    uv: np.ndarray,
    vis: np.ndarray,
    inside: np.ndarray,
    rng: np.random.Generator,
    *,
    missing_rate: float,
    noise_px: float,
    image_size: tuple[int, int],
    nuisance: _Nuisance | None = None,
    nuisance_rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Simulated 2D detector: Gaussian pixel noise, confidences in [0.6, 1] (lower for
    the side turned away), missed joints and short runs of missed frames. Returns
    float32 keypoints (T, 17, 3); missed joints are all zeros. With ``nuisance`` (and
    its ``nuisance_rng``): the subject's noise level, slow tracking errors, limb swaps
    and missed-joint profile."""
    n, j = vis.shape
    nz = nuisance
    xy = uv + rng.normal(0.0, 1.0, size=uv.shape) * (noise_px if nz is None else noise_px * nz.noise)
    if nz is not None:
        xy = _tracking_errors(xy, nz, nuisance_rng)  # type: ignore[arg-type]
    conf = 0.6 + 0.4 * rng.beta(5.0 + 3.0 * vis, 2.0)
    if nz is not None and nz.miss is not None:
        missed = _missed_with_nuisance(vis, missing_rate, nz.miss, nuisance_rng)  # type: ignore[arg-type]
    else:
        missed = rng.random((n, j)) < missing_rate * (1.0 - 0.6 * vis)
        runs = rng.poisson(missing_rate * n / 40.0) if missing_rate > 0 else 0
        for _ in range(runs):
            start = int(rng.integers(0, n))
            missed[start : start + int(rng.integers(1, 7))] = True
    missed |= ~inside
    width, height = image_size
    xy[..., 0] = np.clip(xy[..., 0], 0, width - 1)
    xy[..., 1] = np.clip(xy[..., 1], 0, height - 1)
    kp = np.concatenate([xy, conf[..., None]], -1)
    kp[missed] = 0.0
    kp = np.nan_to_num(kp, nan=0.0, posinf=0.0, neginf=0.0)
    return kp.astype(np.float32)


# --------------------------------------------------------------------------------------
# subject-level nuisance (the ``nuisance`` setting; off by default)
# --------------------------------------------------------------------------------------

#: Parts of the subject-level nuisance, each with its own strength (see
#: :func:`generate_tug_dataset`'s ``nuisance``).
NUISANCE_PARTS = ("body", "style", "camera", "tracking", "missing")

# COCO-17 left/right joint groups a detector swaps when limbs cross or occlude
_SWAP_GROUPS = (
    ((_J["left_knee"], _J["right_knee"]), (_J["left_ankle"], _J["right_ankle"])),
    ((_J["left_ankle"], _J["right_ankle"]),),
    ((_J["left_elbow"], _J["right_elbow"]), (_J["left_wrist"], _J["right_wrist"])),
    ((_J["left_wrist"], _J["right_wrist"]),),
)
# how often a 2D detector misses each joint relative to the others (face and trunk
# least, wrists and ankles most), before the side turned away from the camera is
# weighted up
_MISS_PROFILE = np.array(
    [0.5, 0.6, 0.6, 1.0, 1.0, 0.5, 0.5, 1.1, 1.1, 1.8, 1.8, 0.6, 0.6, 1.0, 1.0, 1.5, 1.5]
)


@dataclass(frozen=True)
class _StyleExtra:
    """Personal style the default model has no parameter for (used by :func:`_simulate`)."""

    leg: tuple[float, float]  # hip swing amplitude factor, left / right (step asymmetry)
    arm: tuple[float, float]  # arm swing amplitude factor, left / right
    arm_out: float  # arm abduction: elbow offset from the trunk, fraction of height
    lateral: float  # rad, sideways trunk lean (+: towards the left side)
    shoulder_drop: float  # left shoulder height minus right, fraction of height
    head_tilt: float  # rad, sideways head tilt


@dataclass(frozen=True)
class _Nuisance:
    """One subject's label-independent traits, drawn by :func:`_subject_nuisance`.

    Factors are multiplicative (1 = none) and offsets additive (0 = none); a part of
    strength 0 leaves its fields at those neutral values (``miss`` None: the default
    detector's missed joints)."""

    # body proportions: factors of ankle height, shank, thigh, hip width, torso,
    # shoulder width, upper arm, forearm, neck and head size
    body: tuple[float, ...]
    # posture and gait style
    lean: float  # rad, added to the trunk lean
    head_pitch: float  # rad
    elbow: float  # rad, added to the resting elbow flexion
    knee: float  # rad, added to the standing knee flexion
    cadence: float  # factor
    step: float  # factor
    arm_amp: float  # factor of the arm swing
    sway: float  # factor of trunk sway and pelvis / shoulder rotation
    sts: float  # factor of the sit-to-stand and stand-to-sit durations
    turn_side: float  # +1 / -1: the side the subject prefers to turn to
    turn_habit: float  # probability of turning to that side (0.5: no habit)
    extra: _StyleExtra | None
    # camera placement (on top of the site's camera)
    cam_dist: float  # factor
    cam_yaw: float  # rad
    cam_flip: bool  # filmed from the other side of the walkway
    cam_frac: float  # factor of the framing
    cam_du: float
    cam_dv: float
    cam_h: float  # m
    cam_roll: float  # rad
    # tracking
    noise: float  # factor of noise_px
    jitter_px: float  # slowly varying detector error, pixels (standard deviation)
    jitter_tau: float  # its time constant, frames
    bias: np.ndarray  # (17, 3) m: per-joint detector offset (clothing), body frame (forward, up, left)
    swap_rate: float  # per frame: a left/right swap of a limb begins
    # missed joints: per-subject rate factor, per-joint weights, run share and length
    miss: tuple[float, np.ndarray, float, float] | None


def _nuisance_strengths(nuisance: float | dict[str, float]) -> dict[str, float]:
    """``nuisance`` as a strength per part (every part for a number)."""
    if isinstance(nuisance, dict):
        unknown = sorted(set(nuisance) - set(NUISANCE_PARTS))
        if unknown:
            raise ValueError(f"nuisance: unknown parts {unknown}; expected some of {list(NUISANCE_PARTS)}")
        out = {p: float(nuisance.get(p, 0.0)) for p in NUISANCE_PARTS}
    else:
        out = {p: float(nuisance) for p in NUISANCE_PARTS}
    bad = {p: v for p, v in out.items() if not (np.isfinite(v) and v >= 0)}
    if bad:
        raise ValueError(f"nuisance strengths must be finite and >= 0; got {bad}")
    return out


def _subject_nuisance(seed: int, subject: int, strength: dict[str, float]) -> _Nuisance:
    """Draw subject ``subject``'s nuisance from ``(seed, subject)`` alone: never from its
    class, so the traits are independent of the label. The same unit draws are scaled by
    each part's strength, so changing one part's strength leaves the others unchanged."""
    rng = np.random.default_rng([seed, 4, subject])
    n = np.clip(rng.standard_normal(96), -2.5, 2.5)
    u = rng.random(8)
    sb, ss, sc, st, sm = (strength[p] for p in NUISANCE_PARTS)

    def ex(sd: float, x: float) -> float:
        return float(np.exp(sd * x))

    body = tuple(ex(0.07 * sb, x) for x in n[0:10])
    extra = None
    if ss > 0:
        extra = _StyleExtra(
            leg=(ex(0.08 * ss, n[20]), ex(0.08 * ss, n[21])),
            arm=(ex(0.25 * ss, n[22]), ex(0.25 * ss, n[23])),
            arm_out=float(0.02 + 0.025 * ss * abs(n[24])),
            lateral=float(0.04 * ss * n[25]),
            shoulder_drop=float(0.012 * ss * n[26]),
            head_tilt=float(0.1 * ss * n[27]),
        )
    flip_p = 0.3 * min(sc, 1.0)
    miss = None
    if sm > 0:
        sd = 0.5 * sm
        weights = (1 - min(sm, 1.0) + min(sm, 1.0) * _MISS_PROFILE) * np.exp(0.35 * sm * n[60:77])
        miss = (
            float(np.exp(sd * n[77] - sd * sd / 2)),  # mean 1 over subjects
            weights / weights.mean(),
            0.2,
            float(2.0 + 8.0 * u[4]),
        )
    return _Nuisance(
        body=body,
        lean=float(0.06 * ss * n[10]),
        head_pitch=float(0.1 * ss * n[11]),
        elbow=float(0.15 * ss * n[12]),
        knee=float(0.03 * ss * n[13]),
        cadence=ex(0.06 * ss, n[14]),
        step=ex(0.06 * ss, n[15]),
        arm_amp=ex(0.3 * ss, n[16]),
        sway=ex(0.3 * ss, n[17]),
        sts=ex(0.1 * ss, n[18]),
        turn_side=1.0 if u[0] < 0.5 else -1.0,
        turn_habit=0.5 + 0.4 * min(ss, 1.0),
        extra=extra,
        cam_dist=ex(0.15 * sc, n[30]),
        cam_yaw=float(0.15 * sc * n[31]),
        cam_flip=bool(u[1] < flip_p),
        cam_frac=ex(0.08 * sc, n[32]),
        cam_du=float(0.05 * sc * n[33]),
        cam_dv=float(0.04 * sc * n[34]),
        cam_h=float(0.25 * sc * n[35]),
        cam_roll=float(0.04 * sc * n[36]),
        noise=ex(0.4 * st, n[40]),
        jitter_px=float(st * (0.5 + abs(n[41]))),
        jitter_tau=float(2.0 + 6.0 * u[2]),
        bias=0.025 * st * n[43:94].reshape(17, 3),
        swap_rate=float(0.003 * st * np.exp(0.5 * n[94])),
        miss=miss,
    )


def _apply_nuisance(m: _Motion, nz: _Nuisance, rng: np.random.Generator) -> None:
    """Give one recording's motion the subject's proportions and style (in place)."""
    for name, f in zip(
        ("ankle_h", "shank", "thigh", "hip_hw", "torso", "shoulder_hw", "upper_arm", "forearm", "neck", "height"),
        nz.body,
    ):
        setattr(m, name, getattr(m, name) * f)
    m.trunk_lean = float(np.clip(m.trunk_lean + nz.lean, -0.15, 0.6))
    m.head_pitch = float(np.clip(m.head_pitch + nz.head_pitch, -0.35, 0.6))
    m.elbow0 = float(np.clip(m.elbow0 + nz.elbow, 0.05, 1.2))
    m.knee0 = float(np.clip(m.knee0 + nz.knee, 0.0, 0.35))
    m.cadence *= nz.cadence
    m.turn_cadence *= nz.cadence
    m.step *= nz.step
    m.hip_amp = float(np.arcsin(np.clip(m.step / (2 * (m.thigh + m.shank)), 0.05, 0.6)))
    m.arm_amp *= nz.arm_amp
    m.trunk_sway *= nz.sway
    m.pelvis_rot *= nz.sway
    m.shoulder_rot *= nz.sway
    m.t_sts *= nz.sts
    m.t_sit *= nz.sts
    m.turn_dir1 = nz.turn_side if rng.random() < nz.turn_habit else -nz.turn_side
    m.turn_dir2 = nz.turn_side if rng.random() < nz.turn_habit else -nz.turn_side
    m.extra = nz.extra


def _subject_camera(cam: _Camera, nz: _Nuisance) -> _Camera:
    """The site's camera moved to where this subject's sessions were filmed from."""
    return _Camera(
        dist=float(np.clip(cam.dist * nz.cam_dist, 4.0, 10.0)),
        yaw=cam.yaw + nz.cam_yaw,
        side=-cam.side if nz.cam_flip else cam.side,
        frac=cam.frac * nz.cam_frac,
        du=cam.du + nz.cam_du,
        dv=cam.dv + nz.cam_dv,
        cam_h=float(np.clip(cam.cam_h + nz.cam_h, 0.4, 2.0)),
        roll=cam.roll + nz.cam_roll,
    )


def _add_bias(world: _World, bias: np.ndarray) -> None:
    """Per-joint detector offsets (m) in each joint's body frame, in place."""
    up = np.array([0.0, 1.0, 0.0])
    world.xyz += (
        bias[None, :, 0:1] * world.forward + bias[None, :, 1:2] * up + bias[None, :, 2:3] * world.left
    )


def _tracking_errors(xy: np.ndarray, nz: _Nuisance, rng: np.random.Generator) -> np.ndarray:
    """Slowly varying detector error and short left/right swaps of limbs."""
    n = xy.shape[0]
    if nz.jitter_px > 0:
        a = float(np.exp(-1.0 / nz.jitter_tau))
        e = rng.standard_normal(xy.shape) * np.sqrt(1 - a * a)
        drift = np.empty_like(e)
        drift[0] = rng.standard_normal(xy.shape[1:])
        for t in range(1, n):
            drift[t] = a * drift[t - 1] + e[t]
        xy = xy + nz.jitter_px * drift
    if nz.swap_rate > 0:
        xy = xy.copy()
        for start in np.flatnonzero(rng.random(n) < nz.swap_rate):
            group = _SWAP_GROUPS[int(rng.integers(len(_SWAP_GROUPS)))]
            sl = slice(int(start), int(start) + int(rng.integers(2, 9)))
            for a_, b_ in group:
                xy[sl, [a_, b_]] = xy[sl, [b_, a_]]
    return xy


def _missed_with_nuisance(
    vis: np.ndarray, missing_rate: float, miss: tuple[float, np.ndarray, float, float], rng: np.random.Generator
) -> np.ndarray:
    """Missed joints (T, 17) at about ``missing_rate * factor`` of all joint-frames:
    the joints' weights, the side turned away (weighted up strongly) and runs of
    wholly missed frames (``share`` of the rate, mean length ``run_len`` frames)."""
    n, _ = vis.shape
    factor, weights, share, run_len = miss
    rate = missing_rate * factor
    away = 1.0 - 0.8 * vis
    away = away / max(float(away.mean()), 1e-9)
    p = np.clip(rate * (1 - share) * weights[None, :] * away, 0.0, 0.95)
    missed = rng.random(p.shape) < p
    for _ in range(int(rng.poisson(rate * share * n / run_len))):
        start = int(rng.integers(0, n))
        missed[start : start + 1 + int(rng.poisson(run_len - 1))] = True
    return missed


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
    remaining = np.array([num_subjects // sites + (k < num_subjects % sites) for k in range(sites)], float)
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
    with_nuisance = any(v > 0 for v in strength.values())
    width, height = (int(v) for v in image_size)
    if width <= 0 or height <= 0:
        raise ValueError(f"image_size must be positive (width, height); got {image_size}")
    image_size = (width, height)

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
            rng = np.random.default_rng([seed, 2, i, r])
            nrng = np.random.default_rng([seed, 5, i, r]) if nz is not None else None
            motion = _recording_motion(style, rng)
            if nz is not None:
                _apply_nuisance(motion, nz, nrng)  # type: ignore[arg-type]
            world = _simulate(motion, fps)
            if nz is not None:
                _add_bias(world, nz.bias)
            uv, vis, inside = _project(world, _jitter_camera(cam, rng), image_size)
            kp = _detect(
                uv, vis, inside, rng, missing_rate=missing_rate, noise_px=noise_px, image_size=image_size,
                nuisance=nz, nuisance_rng=nrng,
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
    return ensure_generated(f"tug-{key}", lambda folder: generate_tug_dataset(folder, **settings), cache_dir)  # type: ignore[arg-type]
