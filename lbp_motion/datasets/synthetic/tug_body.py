"""The person and the camera of the synthetic TUG generator
(:mod:`lbp_motion.datasets.synthetic.tug`): subject styles, one recording's motion
parameters and the durations of its segments, the world joints of the kinematic stick
figure (simulated by :mod:`.tug_kinematics`) and their pinhole projection."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lbp_motion.datasets.layouts import COCO17

# Recording length bounds in seconds (idle time is stretched / the motion compressed
# to stay inside them).
_MIN_DURATION_S = 10.0
_MAX_DURATION_S = 19.8

_REF_HEIGHT_M = 1.70  # reference body height for the camera scale
_WALKWAY_MID_M = 1.55  # x of the walkway centre (chair seat at x = 0)
_TURN_X_M = 2.6  # pelvis x where the outward walk ends (the 3 m line minus the feet and a step)

_J = {name: i for i, name in enumerate(COCO17.joints)}


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


@dataclass(frozen=True)
class _StyleExtra:
    """Personal style the default model has no parameter for (used by :func:`_simulate`)."""

    leg: tuple[float, float]  # hip swing amplitude factor, left / right (step asymmetry)
    arm: tuple[float, float]  # arm swing amplitude factor, left / right
    arm_out: float  # arm abduction: elbow offset from the trunk, fraction of height
    lateral: float  # rad, sideways trunk lean (+: towards the left side)
    shoulder_drop: float  # left shoulder height minus right, fraction of height
    head_tilt: float  # rad, sideways head tilt


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
# the trial: its world joints and its timing (the model is in tug_kinematics.py)
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
    motion = np.array(
        [m.t_sts, d1 / speed + m.ramp, m.t_turn1, d2 / speed + m.ramp, m.t_turn2, m.t_sit]
    )
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


# --------------------------------------------------------------------------------------
# projection
# --------------------------------------------------------------------------------------

# which way each joint "faces": +1 left side, -1 right side, 0 midline (face)
_SIDE = np.array(
    [0.0 if n == "nose" else (1.0 if n.startswith("left_") else -1.0) for n in COCO17.joints]
)
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
