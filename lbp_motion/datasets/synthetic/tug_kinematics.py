"""The kinematic model of the synthetic TUG generator
(:mod:`lbp_motion.datasets.synthetic.tug`): one trial of a :class:`_Motion` (from
:mod:`.tug_body`) simulated frame by frame as a stick figure in a 3D world (metres;
``x`` along the walkway, ``y`` up, ``z`` depth), in steps: the trial's timeline, the gait
phase, the headings, the pelvis path, the legs, the trunk, the head and the arms.

Pure arithmetic on the motion parameters (no random draws): the same motion gives the
same joints bit for bit."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lbp_motion.datasets.synthetic.tug_body import (
    _J,
    _TURN_X_M,
    _Motion,
    _segment_durations,
    _World,
)

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
# the trial, step by step
# --------------------------------------------------------------------------------------

# Segments of a trial, in order (see _segment_durations).
_IDLE0, _STS, _WALK1, _TURN1, _WALK2, _TURN2, _SIT, _IDLE1 = range(8)


@dataclass
class _Timeline:
    """The frames of one trial: time ``t`` (s), the segment durations ``dur`` (8,), each
    frame's segment ``seg``, the time ``tl`` (s) since it began and the progress ``p``
    in [0, 1] through it, and ``is_[k]``: the frames of segment ``k`` (all (T,))."""

    t: np.ndarray
    dur: np.ndarray
    seg: np.ndarray
    tl: np.ndarray
    p: np.ndarray
    is_: list[np.ndarray]

    @property
    def n(self) -> int:
        return len(self.t)

    @property
    def walking(self) -> np.ndarray:
        return self.is_[_WALK1] | self.is_[_WALK2]

    @property
    def turning(self) -> np.ndarray:
        return self.is_[_TURN1] | self.is_[_TURN2]


def _timeline(m: _Motion, fps: float) -> _Timeline:
    """The frames of the trial (its segments' durations from :func:`_segment_durations`)."""
    dur = _segment_durations(m)
    starts = np.concatenate([[0.0], np.cumsum(dur)])
    n = int(round(starts[-1] * fps))
    t = np.arange(n) / fps
    seg = np.clip(np.searchsorted(starts[1:], t, side="right"), 0, len(dur) - 1)
    tl = t - starts[seg]
    p = np.clip(tl / dur[seg], 0.0, 1.0)
    return _Timeline(t, dur, seg, tl, p, [seg == k for k in range(8)])


def _simulate(m: _Motion, fps: float) -> _World:
    """Kinematics of one TUG trial: world joints (T, 17, 3) in metres.

    Step by step: the gait phase, the headings of pelvis, shoulders and head, the
    pelvis path, the legs, the trunk, the head and the arms."""
    tm = _timeline(m, fps)
    phi, g = _gait(m, tm, fps)
    theta_pelvis, theta_sh, theta_head = _headings(m, tm, phi, g)
    alpha, kappa = _leg_angles(m, phi, g)
    pelvis = _pelvis(m, tm, alpha, kappa)

    fwd_p, left_p = _heading_axes(theta_pelvis)
    fwd_s, left_s = _heading_axes(theta_sh)
    fwd_h, left_h = _heading_axes(theta_head)
    up = np.broadcast_to(np.array([0.0, 1.0, 0.0]), (tm.n, 3))

    hips, knees, ankles = _legs(m, tm, pelvis, alpha, kappa, fwd_p, left_p, up)
    tau = _trunk_angle(m, tm, phi, g)
    shoulder_c, shoulders = _shoulders(m, pelvis, tau, fwd_s, left_s, up)
    nose, eyes, ears = _head(m, shoulder_c, tau, fwd_h, left_h, up)
    elbows, wrists = _arms(m, tm, phi, g, tau, shoulders, hips, knees, fwd_s, left_s, up)
    head, arms, legs = (fwd_h, left_h), (fwd_s, left_s), (fwd_p, left_p)
    return _world(
        tm.n,
        {
            "nose": (nose, *head),
            "left_eye": (eyes[0], *head),
            "right_eye": (eyes[1], *head),
            "left_ear": (ears[0], *head),
            "right_ear": (ears[1], *head),
            "left_shoulder": (shoulders[0], *arms),
            "right_shoulder": (shoulders[1], *arms),
            "left_elbow": (elbows[0], *arms),
            "right_elbow": (elbows[1], *arms),
            "left_wrist": (wrists[0], *arms),
            "right_wrist": (wrists[1], *arms),
            "left_hip": (hips[0], *legs),
            "right_hip": (hips[1], *legs),
            "left_knee": (knees[0], *legs),
            "right_knee": (knees[1], *legs),
            "left_ankle": (ankles[0], *legs),
            "right_ankle": (ankles[1], *legs),
        },
    )


def _gait(m: _Motion, tm: _Timeline, fps: float) -> tuple[np.ndarray, np.ndarray]:
    """Gait phase ``phi`` (one stride, two steps, is 2 pi) and amplitude ``g`` in [0, 1]
    (0 when standing still or seated), both (T,)."""
    walking, turning = tm.walking, tm.turning
    cad = np.where(walking, m.cadence, np.where(turning, m.turn_cadence, 0.0))
    phi = m.phase0 + np.cumsum(np.pi * cad / fps)  # one stride (2 steps) = 2 pi
    g = np.zeros(tm.n)
    g = np.where(walking, _trapezoid_speed(tm.tl, m.ramp, tm.dur[tm.seg]), g)
    g = np.where(turning, 0.55 * np.sin(np.pi * tm.p) ** 0.6, g)
    return phi, g


def _headings(
    m: _Motion, tm: _Timeline, phi: np.ndarray, g: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Headings (rad, (T,)) of the pelvis, the shoulders and the head: the turns (in
    steps for a multi-step turner), the pelvis and shoulder counter-rotation of the
    gait, the shoulders and the head leading into a turn."""
    is_, p, t = tm.is_, tm.p, tm.t
    n_steps = max(2, int(round(m.t_turn1 * m.turn_cadence)))
    frac = p * n_steps
    stair = (np.floor(frac) + _sstep(frac - np.floor(frac))) / n_steps
    prog = (1 - m.multi_step) * _sstep(p) + m.multi_step * np.minimum(stair, 1.0)
    th1, th2 = m.turn_dir1 * np.pi, m.turn_dir1 * np.pi + m.turn_dir2 * np.pi
    theta = np.select(
        [is_[_TURN1], is_[_WALK2], is_[_TURN2], is_[_SIT] | is_[_IDLE1]],
        [th1 * prog, np.full(tm.n, th1), th1 + (th2 - th1) * prog, np.full(tm.n, th2)],
        0.0,
    )
    theta_pelvis = theta + m.pelvis_rot * g * np.sin(phi)
    theta_sh = np.interp(t + m.lead_shoulder, t, theta) - m.shoulder_rot * g * np.sin(phi)
    theta_head = np.interp(t + m.lead_head, t, theta)
    return theta_pelvis, theta_sh, theta_head


def _leg_angles(m: _Motion, phi: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hip flexion ``alpha`` and knee flexion ``kappa`` (rad, (T, 2): left, right) of
    the gait (used while on the feet)."""
    alpha = np.stack([g * m.hip_amp * np.sin(phi), g * m.hip_amp * np.sin(phi + np.pi)], -1)
    if m.extra is not None:
        alpha = alpha * np.array(m.extra.leg)
    swing = np.stack([np.cos(phi), np.cos(phi + np.pi)], -1)
    kappa = m.knee0 + g[:, None] * m.knee_amp * np.clip(swing, 0, None) ** 1.5
    return alpha, kappa


def _pelvis(m: _Motion, tm: _Timeline, alpha: np.ndarray, kappa: np.ndarray) -> np.ndarray:
    """Pelvis path (T, 3): rising from the seat, out along the walkway, around the turn,
    back and down; its height follows the seat, the rise and the legs' extension."""
    is_, p, tl, dur = tm.is_, tm.p, tm.tl, tm.dur
    x_stand = m.thigh * 0.85 + m.shank * np.sin(m.knee0)
    h_stand = m.ankle_h + m.thigh + m.shank * np.cos(m.knee0)
    h_seat = m.ankle_h + 0.97 * m.shank
    speed = m.cadence * m.step
    x_turn2 = _TURN_X_M + 0.12
    p_so = m.seat_off
    px = np.select(
        [is_[_STS], is_[_WALK1], is_[_TURN1], is_[_WALK2], is_[_TURN2], is_[_SIT]],
        [
            x_stand * _sstep((p - 0.8 * p_so) / (1 - 0.8 * p_so)),
            x_stand + _trapezoid_distance(tl, speed, m.ramp, dur[_WALK1]),
            _TURN_X_M + 0.12 * _sstep(p),
            x_turn2 - _trapezoid_distance(tl, speed, m.ramp, dur[_WALK2]),
            x_stand + 0.22 * (1 - _sstep(p)),
            x_stand * (1 - _sstep((p - 0.05) / 0.6)),
        ],
        0.0,
    )
    pz = np.where(is_[_TURN1], m.turn_dir1 * 0.10 * np.sin(np.pi * p), 0.0)
    pz = np.where(is_[_TURN2], m.turn_dir2 * 0.08 * np.sin(np.pi * p), pz)
    ext = m.thigh * np.cos(alpha) + m.shank * np.cos(alpha - kappa)
    py_walk = m.ankle_h + ext.max(-1)
    py = np.select(
        [is_[_IDLE0] | is_[_IDLE1], is_[_STS], is_[_SIT]],
        [
            np.full(tm.n, h_seat),
            h_seat + (h_stand - h_seat) * _sstep((p - p_so) / (1 - p_so)),
            h_stand - (h_stand - h_seat) * _sstep((p - 0.05) / 0.65),
        ],
        py_walk,
    )
    return np.stack([px, py, pz], -1)


def _legs(
    m: _Motion,
    tm: _Timeline,
    pelvis: np.ndarray,
    alpha: np.ndarray,
    kappa: np.ndarray,
    fwd_p: np.ndarray,
    left_p: np.ndarray,
    up: np.ndarray,
) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """Hips, knees and ankles ([left, right], each (T, 3)): forward kinematics of the
    gait angles while on the feet, the feet planted in front of the chair (two-link IK)
    while seated or rising or sitting down."""
    is_, n = tm.is_, tm.n
    x_feet = m.thigh * 0.85
    hips, knees, ankles = [], [], []
    seated = is_[_IDLE0] | is_[_STS] | is_[_SIT] | is_[_IDLE1]
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
    return hips, knees, ankles


def _trunk_angle(m: _Motion, tm: _Timeline, phi: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Forward trunk inclination ``tau`` (rad, (T, 1)): breathing while seated, the lean
    of the sit-to-stand and stand-to-sit, the walking lean with its sway."""
    is_, p, n = tm.is_, tm.p, tm.n
    breathe = 0.012 * np.sin(2 * np.pi * tm.t / 3.7)
    p_so, p_td = m.seat_off, 0.7
    return np.select(
        [
            is_[_IDLE0] | is_[_IDLE1],
            is_[_STS] & (p < p_so),
            is_[_STS],
            tm.walking,
            tm.turning,
            is_[_SIT] & (p < p_td),
            is_[_SIT],
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


def _shoulders(
    m: _Motion,
    pelvis: np.ndarray,
    tau: np.ndarray,
    fwd_s: np.ndarray,
    left_s: np.ndarray,
    up: np.ndarray,
) -> tuple[np.ndarray, list[np.ndarray]]:
    """The shoulder centre (T, 3) atop the inclined trunk and the shoulders ([left,
    right]); with the nuisance style, a sideways lean and one shoulder lower."""
    ex = m.extra
    shoulder_c = pelvis + m.torso * (np.sin(tau) * fwd_s + np.cos(tau) * up)
    if ex is not None:
        shoulder_c = shoulder_c + m.torso * np.sin(ex.lateral) * left_s
    shoulders = [shoulder_c + side * m.shoulder_hw * left_s for side in (1.0, -1.0)]
    if ex is not None:
        shoulders = [
            sh + side * 0.5 * ex.shoulder_drop * m.height * up
            for sh, side in zip(shoulders, (1.0, -1.0))
        ]
    return shoulder_c, shoulders


def _head(
    m: _Motion,
    shoulder_c: np.ndarray,
    tau: np.ndarray,
    fwd_h: np.ndarray,
    left_h: np.ndarray,
    up: np.ndarray,
) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
    """Nose, eyes and ears ([left, right]), each (T, 3): the head on the neck, following
    the trunk's inclination, pitched down by ``head_pitch``."""
    neck_dir = np.sin(0.7 * tau) * fwd_h + np.cos(0.7 * tau) * up
    head_c = shoulder_c + m.neck * neck_dir
    if m.extra is not None:
        head_c = head_c + m.neck * np.sin(m.extra.head_tilt) * left_h
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
    return nose, eyes, ears


def _arms(
    m: _Motion,
    tm: _Timeline,
    phi: np.ndarray,
    g: np.ndarray,
    tau: np.ndarray,
    shoulders: list[np.ndarray],
    hips: list[np.ndarray],
    knees: list[np.ndarray],
    fwd_s: np.ndarray,
    left_s: np.ndarray,
    up: np.ndarray,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Elbows and wrists ([left, right], each (T, 3)): the arm swing of the gait, blended
    with the hands on the thighs while seated; with ``push`` they stay there (near the
    knees) and push through most of the rise."""
    is_, p, n, h = tm.is_, tm.p, tm.n, m.height
    ex = m.extra
    p_rel = 0.12 + 0.6 * m.push
    p_reach = 0.45 - 0.25 * m.push
    hand = np.select(
        [is_[_IDLE0] | is_[_IDLE1], is_[_STS], is_[_SIT]],
        [np.ones(n), 1 - _sstep((p - p_rel) / 0.2), _sstep((p - p_reach) / 0.25)],
        0.0,
    )[:, None]
    bump = np.exp(-(((p - m.seat_off) / 0.18) ** 2))
    arm_bias = np.where(is_[_STS], 0.5 * (1 - m.push) * bump, 0.0) + 0.25 * tau[:, 0]
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
    return elbows, wrists


def _world(n: int, parts: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]) -> _World:
    """The :class:`_World` of ``parts``: joint name -> (position, forward, left), each
    (T, 3), in COCO-17 order."""
    xyz = np.zeros((n, 17, 3))
    forward = np.zeros((n, 17, 3))
    left = np.zeros((n, 17, 3))
    for name, (pos, f, lft) in parts.items():
        j = _J[name]
        xyz[:, j], forward[:, j], left[:, j] = pos, f, lft
    return _World(xyz, forward, left)
