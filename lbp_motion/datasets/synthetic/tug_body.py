"""The person, camera and detector of the synthetic TUG generator
(:mod:`lbp_motion.datasets.synthetic.tug`): subject styles, one recording's motion, the
kinematic stick figure in a 3D world, its pinhole projection and a simulated 2D
detector (pixel noise, confidences, missed joints)."""

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
        shoulders = [
            sh + side * 0.5 * ex.shoulder_drop * m.height * up
            for sh, side in zip(shoulders, (1.0, -1.0))
        ]

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
    eyes = [
        head_c + 0.045 * h * face_f + 0.012 * h * face_u + s * 0.018 * h * left_h
        for s in (1.0, -1.0)
    ]
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
