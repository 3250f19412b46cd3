"""The motion model of the synthetic EmoPain generator
(:mod:`lbp_motion.datasets.synthetic.emopain`): per-frame pose parameters of each
labelled exercise instance (from :mod:`.emopain_model`), the changes protective
behaviour makes, forward kinematics to 22 joints, and sEMG envelopes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d

from lbp_motion.datasets.synthetic.emopain_model import (
    BEND,
    ONE_LEG,
    OTHER,
    REACH,
    SIT_TO_STAND,
    SITTING,
    STAND_TO_SIT,
    STANDING,
    WALKING,
    _Instance,
    _Subject,
)

# --------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------


def _sstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _cycle(frac: np.ndarray, up: float, hold: float, down: float) -> np.ndarray:
    """A 0 -> 1 -> 0 profile over one cycle fraction in [0, 1): rise over ``up``, hold,
    fall over ``down``, rest at 0 for the remainder."""
    rise = _sstep(frac / up)
    fall = 1.0 - _sstep((frac - up - hold) / down)
    return np.where(frac < up, rise, np.where(frac < up + hold, 1.0, np.maximum(fall, 0.0)))


def _smooth_noise(
    rng: np.random.Generator, n: int, fps: float, hz: float, sd: float | np.ndarray
) -> np.ndarray:
    """Band-limited Gaussian noise (n,) below ~``hz``, scaled to standard deviation
    ``sd`` (a number or a per-frame array)."""
    if n == 0:
        return np.zeros(0)
    x = gaussian_filter1d(rng.normal(size=n + 200), sigma=fps / (2 * np.pi * hz), mode="wrap")[
        100:-100
    ]
    return x / max(float(x.std()), 1e-9) * sd


def _smooth(x: np.ndarray, fps: float, seconds: float) -> np.ndarray:
    return gaussian_filter1d(
        np.asarray(x, dtype=np.float64), sigma=max(seconds * fps, 1e-3), mode="nearest"
    )


# --------------------------------------------------------------------------------------
# motion: per-frame pose parameters
# --------------------------------------------------------------------------------------

_TRACKS = (
    "alpha_r", "alpha_l", "kappa_r", "kappa_l", "phi", "lumbar", "psi", "tau", "rho", "nu",
    "beta_r", "beta_l", "gamma_r", "gamma_l", "eps_r", "eps_l", "shrug", "vel", "turn", "shift",
)  # fmt: skip

_STAND = dict(alpha=0.03, kappa=0.06, beta=0.06, gamma=0.1, eps=0.25)
_SEAT = dict(alpha=1.45, kappa=1.5, beta=0.55, gamma=0.15, eps=0.9)


def _neutral(n: int, subj: _Subject, seated: bool) -> dict[str, np.ndarray]:
    p = _SEAT if seated else _STAND
    tr = {k: np.zeros(n) for k in _TRACKS}
    for side in "rl":
        tr[f"alpha_{side}"][:] = p["alpha"]
        tr[f"kappa_{side}"][:] = p["kappa"]
        tr[f"beta_{side}"][:] = p["beta"]
        tr[f"gamma_{side}"][:] = p["gamma"]
        tr[f"eps_{side}"][:] = p["eps"]
    tr["phi"][:] = subj.phi0 + (0.12 if seated else 0.0)
    tr["nu"][:] = subj.nu0
    tr["lumbar"][:] = 0.5
    return tr


def _blend(
    a: dict[str, np.ndarray], b: dict[str, np.ndarray], q: np.ndarray
) -> dict[str, np.ndarray]:
    return {k: a[k] * (1 - q) + b[k] * q for k in a}


@dataclass
class _Drive:
    """What drives one instance's motion: its exercise, frames ``n`` and latent
    ``pain``; per frame (n,) the time-warp ``rate`` of the nominal speed, the range
    ``amp``, the nominal seconds ``t_nom``, the guarding (stiffness) and the sway; whether
    it starts ``seated``; the participant, the recording's generator and the fps."""

    exercise: int
    n: int
    pain: int
    rate: np.ndarray
    amp: np.ndarray
    t_nom: np.ndarray
    guard: np.ndarray
    sway: np.ndarray
    seated: bool
    subj: _Subject
    rng: np.random.Generator
    fps: float


def _instance_motion(
    inst: _Instance,
    subj: _Subject,
    rng: np.random.Generator,
    fps: float,
    seated: bool,
    difficult: bool,
) -> tuple[dict[str, np.ndarray], bool]:
    """Pose-parameter tracks (n,) of one instance, and whether it ends seated: the
    neutral posture with sway, guarding and pain, then the exercise's own motion
    (:data:`_EXERCISE_MOTION`)."""
    n, ex, pain = inst.n, inst.exercise, inst.pain
    g = _smooth(inst.protective.astype(float), fps, 0.2)  # any protective behaviour
    guard = _smooth(inst.protective * inst.types[:, 0], fps, 0.2)  # guarding / stiffness
    hes = _smooth(inst.hesitation.astype(float), fps, 0.1)
    rate = subj.speed * (1 - 0.1 * pain) * (1 - 0.3 * g) * (1 - 0.85 * np.clip(hes, 0, 1))
    amp = subj.range_ * (1 - 0.08 * pain) * (1 - 0.35 * g) * (1.1 if difficult else 1.0)
    t_nom = np.cumsum(rate) / fps  # nominal (undelayed) seconds
    tr = _neutral(n, subj, seated)
    sway = (0.010 + 0.006 * pain) * subj.sway * (1 - 0.5 * guard)
    tr["psi"] += _smooth_noise(rng, n, fps, 0.4, sway)
    tr["phi"] += _smooth_noise(rng, n, fps, 0.3, 0.6 * sway) + (0.0 if seated else 0.03 * pain)
    tr["lumbar"] += 0.35 * guard
    tr["shrug"] += 0.6 * guard + 0.12 * pain
    drive = _Drive(ex, n, pain, rate, amp, t_nom, guard, sway, seated, subj, rng, fps)
    _EXERCISE_MOTION[ex](tr, drive)
    ends_seated = ex == STAND_TO_SIT if ex in (SIT_TO_STAND, STAND_TO_SIT) else seated
    return tr, ends_seated


def _one_leg(tr: dict[str, np.ndarray], d: _Drive) -> None:
    """One-leg stand: one leg lifted (hip and knee flexed) and held, alternating sides
    every cycle, the pelvis shifted over the standing leg, more sway, arms out."""
    c = d.t_nom / 4.5
    prof = _cycle(c % 1.0, 0.15, 0.6, 0.15)
    right = (np.floor(c).astype(int) + int(d.rng.integers(2))) % 2 == 0
    lift_a, lift_k = d.amp * 0.9 * prof, d.amp * 1.4 * prof
    tr["alpha_r"] += np.where(right, lift_a, 0)
    tr["kappa_r"] += np.where(right, lift_k, 0)
    tr["alpha_l"] += np.where(right, 0, lift_a)
    tr["kappa_l"] += np.where(right, 0, lift_k)
    tr["shift"] = np.where(right, 1.0, -1.0) * 0.035 * prof
    sd = (0.02 + 0.015 * d.pain) * d.subj.sway
    tr["psi"] += _smooth_noise(d.rng, d.n, d.fps, 1.0, sd) * prof
    for side in "rl":
        tr[f"gamma_{side}"] += 0.35 * prof * (1 - 0.5 * d.guard)


def _reach(tr: dict[str, np.ndarray], d: _Drive) -> None:
    """Reach forward: both arms raised forward, the trunk leaning after them."""
    prof = _cycle((d.t_nom / 4.0) % 1.0, 0.3, 0.25, 0.3)
    for side in "rl":
        tr[f"beta_{side}"] += d.amp * 1.45 * prof
        tr[f"eps_{side}"] -= 0.15 * prof
    tr["phi"] += d.amp * 0.4 * prof
    tr["nu"] -= 0.2 * prof


def _bend(tr: dict[str, np.ndarray], d: _Drive) -> None:
    """Forward bend: trunk flexion by the participant's flexibility, the knees bending
    more with guarding and pain, the arms hanging down."""
    prof = _cycle((d.t_nom / 4.5) % 1.0, 0.35, 0.15, 0.35)
    bend = d.amp * d.subj.flex * 1.35 * prof
    knee = (0.15 + 0.35 * d.guard + 0.1 * d.pain) * prof
    tr["phi"] += bend
    for side in "rl":
        tr[f"kappa_{side}"] += knee
        tr[f"alpha_{side}"] += knee / 2
        tr[f"beta_{side}"] += 0.85 * bend
    tr["nu"] += 0.3 * prof


def _transfer(tr: dict[str, np.ndarray], d: _Drive) -> None:
    """Sit-to-stand or stand-to-sit: the posture blended between seated and standing
    (time-warped by the rate; the knees a little after the hips), the trunk leaning
    forward mid-way."""
    n, ex = d.n, d.exercise
    a, b = int(0.15 * n), max(int(0.85 * n), int(0.15 * n) + 1)
    u = d.t_nom - d.t_nom[a]
    q = _sstep(u / max(u[min(b, n - 1)], 1e-6))  # 0 seated -> 1 standing, time-warped by rate
    if ex == STAND_TO_SIT:
        q = 1 - q
    seat, stand = _neutral(n, d.subj, True), _neutral(n, d.subj, False)
    base = _blend(seat, stand, q)
    for k in (
        "alpha_r",
        "alpha_l",
        "beta_r",
        "beta_l",
        "gamma_r",
        "gamma_l",
        "eps_r",
        "eps_l",
        "phi",
        "nu",
    ):
        tr[k] = base[k] + (tr[k] - (seat[k] if d.seated else stand[k]))
    qk = _sstep((q - 0.1) / 0.9)  # the knees extend a little later than the hips
    for side in "rl":
        tr[f"kappa_{side}"] = seat[f"kappa_{side}"] * (1 - qk) + stand[f"kappa_{side}"] * qk
    lean = np.sin(np.pi * np.clip(q if ex == SIT_TO_STAND else 1 - q, 0, 1)) ** 1.5
    tr["phi"] += d.amp * (0.55 + 0.15 * d.pain) * lean


def _sitting(tr: dict[str, np.ndarray], d: _Drive) -> None:
    """Sitting still: the seated posture with its sway only."""


def _standing(tr: dict[str, np.ndarray], d: _Drive) -> None:
    """Standing still: more sideways sway."""
    tr["psi"] += _smooth_noise(d.rng, d.n, d.fps, 0.3, 0.5 * d.sway)


def _walking(tr: dict[str, np.ndarray], d: _Drive) -> None:
    """Walking: a gait cycle (hips, knees, arm swing, pelvis and shoulder rotation,
    sway) that starts and stops smoothly, forward speed, and a 180 degree turn over the
    last 0.8 m of every 3-5 m."""
    n, fps, subj, amp, guard, pain = d.n, d.fps, d.subj, d.amp, d.guard, d.pain
    env = _sstep(np.arange(n) / (0.7 * fps)) * _sstep((n - 1 - np.arange(n)) / (0.7 * fps))
    cad = 1.85 * d.rate * (1 - 0.15 * guard) * (0.5 + 0.5 * env)  # steps / s
    phase = np.cumsum(np.pi * cad) / fps + d.rng.uniform(0, 2 * np.pi)
    leg = 0.49 * subj.height * subj.prop
    step = 0.40 * subj.height * amp * (1 - 0.05 * pain) * env
    a_h = np.arcsin(np.clip(step / (2 * leg), 0, 0.6))
    k_amp = 0.95 * amp * (1 - 0.3 * guard) * env
    arm = 0.35 * subj.arm * amp * (1 - 0.6 * guard) * env
    s, c = np.sin(phase), np.cos(phase)
    tr["alpha_r"] += a_h * s
    tr["alpha_l"] -= a_h * s
    tr["kappa_r"] += k_amp * np.maximum(c, 0) ** 1.5
    tr["kappa_l"] += k_amp * np.maximum(-c, 0) ** 1.5
    tr["beta_r"] -= arm * s
    tr["beta_l"] += arm * s
    tr["rho"] = 0.1 * s * env * (1 - 0.6 * guard)
    tr["tau"] = -0.7 * tr["rho"] * (1 - 0.5 * guard)
    tr["psi"] += 0.025 * np.sin(phase) * env
    tr["phi"] += 0.04 + 0.04 * pain
    tr["vel"] = cad * step
    # turn 180 degrees over the last 0.8 m of every 3-5 m
    dist = np.cumsum(tr["vel"]) / fps
    leg_len = d.rng.uniform(3.0, 5.0)
    turning = (dist % leg_len) > leg_len - 0.8
    tr["turn"] = np.where(turning, subj.turn_dir * np.pi * tr["vel"] / 0.8, 0.0)


def _other(tr: dict[str, np.ndarray], d: _Drive) -> None:
    """Other movement (exercise 0): small, slow free movements in the current posture."""
    n, fps, rng, guard = d.n, d.fps, d.rng, d.guard
    for side in "rl":
        tr[f"beta_{side}"] += np.abs(_smooth_noise(rng, n, fps, 0.4, 0.25)) * (1 - 0.5 * guard)
        tr[f"eps_{side}"] += np.abs(_smooth_noise(rng, n, fps, 0.4, 0.25))
        tr[f"gamma_{side}"] += np.abs(_smooth_noise(rng, n, fps, 0.3, 0.08))
    tr["phi"] += _smooth_noise(rng, n, fps, 0.3, 0.05)
    tr["turn"] = _smooth_noise(rng, n, fps, 0.2, 0.15)


#: Each exercise's motion on top of the neutral posture (in place; draws from ``d.rng``).
_EXERCISE_MOTION = {
    OTHER: _other,
    ONE_LEG: _one_leg,
    REACH: _reach,
    BEND: _bend,
    SIT_TO_STAND: _transfer,
    STAND_TO_SIT: _transfer,
    SITTING: _sitting,
    STANDING: _standing,
    WALKING: _walking,
}


def _protective_extras(
    tr: dict[str, np.ndarray],
    types: np.ndarray,
    prot: np.ndarray,
    rng: np.random.Generator,
    fps: float,
) -> None:
    """Type-specific changes, in place: support/bracing (hands to the thighs), abrupt
    motion (short jerks), rubbing (right hand on the lower back)."""
    n = len(prot)
    brace = _smooth(prot * types[:, 2], fps, 0.2) * 0.85
    for side in "rl":
        tr[f"beta_{side}"] = tr[f"beta_{side}"] * (1 - brace) + 0.45 * brace
        tr[f"eps_{side}"] = tr[f"eps_{side}"] * (1 - brace) + 0.6 * brace
        tr[f"gamma_{side}"] = tr[f"gamma_{side}"] * (1 - brace) + 0.05 * brace
    rub = _smooth(prot * types[:, 4], fps, 0.25) * 0.9
    osc = 0.15 * np.sin(2 * np.pi * 2.0 * np.arange(n) / fps)
    tr["beta_r"] = tr["beta_r"] * (1 - rub) + (-0.7 + osc) * rub
    tr["eps_r"] = tr["eps_r"] * (1 - rub) + 0.9 * rub
    abrupt = np.flatnonzero(np.diff(np.concatenate([[0], prot * types[:, 3]])) > 0)
    for start in abrupt:
        end = start + int(np.argmin(np.concatenate([prot[start:] * types[start:, 3], [0]])))
        for _ in range(int(rng.integers(1, 4))):
            centre = int(rng.integers(start, max(end, start + 1)))
            bump = np.exp(-0.5 * ((np.arange(n) - centre) / (0.06 * fps)) ** 2)
            tr["phi"] += rng.choice([-1, 1]) * 0.2 * bump
            tr["beta_r"] += rng.choice([-1, 1]) * 0.35 * bump
            tr["beta_l"] += rng.choice([-1, 1]) * 0.35 * bump


# --------------------------------------------------------------------------------------
# forward kinematics and sEMG
# --------------------------------------------------------------------------------------


def _trunk_dir(
    phi: np.ndarray, psi: np.ndarray, f: np.ndarray, u: np.ndarray, lat: np.ndarray
) -> np.ndarray:
    """Unit-ish direction (T, 3) inclined ``phi`` forward and ``psi`` sideways from up."""
    return (
        (np.cos(psi) * np.cos(phi))[:, None] * u
        + (np.cos(psi) * np.sin(phi))[:, None] * f
        + np.sin(psi)[:, None] * lat
    )


def _forward_kinematics(
    tr: dict[str, np.ndarray], subj: _Subject, fps: float, start: np.ndarray, theta0: float
) -> np.ndarray:
    """Joint positions (T, 22, 3) in metres from the pose-parameter tracks: the heading
    (turning from ``theta0``), then the legs and pelvis walking from ``start`` on the
    floor, the spine and head, the shoulder girdle and arms."""
    n = len(tr["phi"])
    theta = theta0 + np.cumsum(tr["turn"]) / fps
    u = np.broadcast_to(np.array([0.0, 1.0, 0.0]), (n, 3))
    f = np.stack([np.cos(theta), np.zeros(n), np.sin(theta)], -1)
    lat = np.stack([np.sin(theta), np.zeros(n), -np.cos(theta)], -1)  # u x f
    j = np.zeros((n, 22, 3))
    pelvis = _lower_body(j, tr, subj, fps, start, u, f, lat)
    t_up = _spine_and_head(j, tr, subj, pelvis, u, f, lat)
    _arms(j, tr, subj, t_up, u, f)
    return j


def _leg(
    alpha: np.ndarray, kappa: np.ndarray, thigh: float, shank: float, u: np.ndarray, f: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A leg with hip flexion ``alpha`` and knee flexion ``kappa``: the thigh and shank
    directions (T, 3) and the hip's height and forward offset above the ankle (T,)."""
    d1 = -np.cos(alpha)[:, None] * u + np.sin(alpha)[:, None] * f
    d2 = -np.cos(alpha - kappa)[:, None] * u + np.sin(alpha - kappa)[:, None] * f
    vert = thigh * np.cos(alpha) + shank * np.cos(alpha - kappa)
    fwd = thigh * np.sin(alpha) + shank * np.sin(alpha - kappa)
    return d1, d2, vert, fwd


def _lower_body(
    j: np.ndarray,
    tr: dict[str, np.ndarray],
    subj: _Subject,
    fps: float,
    start: np.ndarray,
    u: np.ndarray,
    f: np.ndarray,
    lat: np.ndarray,
) -> np.ndarray:
    """Fill the pelvis, hips, knees and ankles of ``j``; returns the pelvis (T, 3). The
    body moves from ``start`` at the ``vel`` track's speed; the longer leg bears the
    weight and sets the pelvis height."""
    h = subj.height
    ankle_h, shank, thigh = 0.039 * h, 0.246 * h * subj.prop, 0.245 * h * subj.prop
    hip_hw = 0.052 * h
    base = start + np.cumsum(tr["vel"][:, None] * f, axis=0) / fps  # (T, 3), on the floor
    d1r, d2r, vr, fr = _leg(tr["alpha_r"], tr["kappa_r"], thigh, shank, u, f)
    d1l, d2l, vl, fl = _leg(tr["alpha_l"], tr["kappa_l"], thigh, shank, u, f)
    wr = 1.0 / (1.0 + np.exp(-np.clip(30.0 * (vr - vl), -50, 50)))  # the longer leg bears weight
    height = ankle_h + np.maximum(vr, vl)
    fwd = wr * fr + (1 - wr) * fl
    pelvis = base + height[:, None] * u - fwd[:, None] * f + tr["shift"][:, None] * hip_hw * lat
    rho = tr["rho"][:, None]
    lp = np.cos(rho) * lat + np.sin(rho) * f
    j[:, 0] = pelvis
    for side, (hip, knee, ankle), (d1, d2) in (
        (-1.0, (1, 2, 3), (d1r, d2r)),
        (1.0, (4, 5, 6), (d1l, d2l)),
    ):
        j[:, hip] = pelvis + side * hip_hw * lp
        j[:, knee] = j[:, hip] + thigh * d1
        j[:, ankle] = j[:, knee] + shank * d2
    return pelvis


def _spine_and_head(
    j: np.ndarray,
    tr: dict[str, np.ndarray],
    subj: _Subject,
    pelvis: np.ndarray,
    u: np.ndarray,
    f: np.ndarray,
    lat: np.ndarray,
) -> np.ndarray:
    """Fill the spine, chest, neck, head and head top of ``j``; returns the upper trunk's
    direction (T, 3). The lumbar segment bends by ``lumbar`` of the trunk flexion."""
    h = subj.height
    lumbar_l, thor_l, neck_l, head_l, top_l = 0.11 * h, 0.15 * h, 0.06 * h, 0.07 * h, 0.08 * h
    phi, psi, nu = tr["phi"], tr["psi"], tr["nu"]
    t_low = _trunk_dir(tr["lumbar"] * phi, 0.5 * psi, f, u, lat)
    t_up = _trunk_dir(phi, psi, f, u, lat)
    j[:, 7] = pelvis + lumbar_l * t_low
    j[:, 8] = j[:, 7] + thor_l * t_up
    j[:, 19] = j[:, 8] + neck_l * _trunk_dir(phi + 0.4 * nu, psi, f, u, lat)
    t_head = _trunk_dir(phi + nu, psi, f, u, lat)
    j[:, 20] = j[:, 19] + head_l * t_head
    j[:, 21] = j[:, 20] + top_l * t_head
    return t_up


def _arms(
    j: np.ndarray,
    tr: dict[str, np.ndarray],
    subj: _Subject,
    t_up: np.ndarray,
    u: np.ndarray,
    f: np.ndarray,
) -> None:
    """Fill the collars, shoulders, elbows, wrists and hands of ``j`` (from the chest,
    ``j[:, 8]``): the shoulder girdle twisted by ``tau`` and raised by ``shrug``, each arm
    raised forward by ``beta``, out by ``gamma``, the elbow bent by ``eps``."""
    h = subj.height
    ua, fa, hand = 0.186 * h, 0.146 * h, 0.06 * h
    phi = tr["phi"]
    # shoulder girdle frame: trunk up, forward and left, twisted by tau
    tf = np.cos(phi)[:, None] * f - np.sin(phi)[:, None] * u
    tl = np.cross(t_up, tf)
    tl /= np.maximum(np.linalg.norm(tl, axis=-1, keepdims=True), 1e-9)
    tau = tr["tau"][:, None]
    tf2, tl2 = np.cos(tau) * tf + np.sin(tau) * tl, np.cos(tau) * tl - np.sin(tau) * tf
    shrug = tr["shrug"][:, None]
    for side, s, joints in (("r", -1.0, (9, 10, 11, 12, 13)), ("l", 1.0, (14, 15, 16, 17, 18))):
        beta, gamma, eps = (tr[f"{k}_{side}"][:, None] for k in ("beta", "gamma", "eps"))
        collar, shoulder, elbow, wrist, hnd = joints
        j[:, collar] = j[:, 8] + 0.02 * h * t_up + s * 0.035 * h * tl2
        j[:, shoulder] = j[:, 8] + (0.03 + 0.025 * shrug) * h * t_up + s * 0.11 * h * tl2
        a1 = (
            -np.cos(beta) * np.cos(gamma) * t_up
            + np.sin(beta) * np.cos(gamma) * tf2
            + s * np.sin(gamma) * tl2
        )
        a2 = (
            -np.cos(beta + eps) * np.cos(gamma) * t_up
            + np.sin(beta + eps) * np.cos(gamma) * tf2
            + s * np.sin(gamma) * tl2
        )
        j[:, elbow] = j[:, shoulder] + ua * a1
        j[:, wrist] = j[:, elbow] + fa * a2
        j[:, hnd] = j[:, wrist] + hand * a2


def _emg(
    tr: dict[str, np.ndarray],
    pain: np.ndarray,
    guard: np.ndarray,
    subj: _Subject,
    rng: np.random.Generator,
    fps: float,
) -> np.ndarray:
    """Rectified sEMG envelopes (T, 4) in mV: right/left lumbar paraspinal, right/left
    upper trapezius."""
    n = len(pain)
    phi = tr["phi"]

    def rate(x):
        return np.abs(np.gradient(x)) * fps

    relax = _sstep((phi - 1.05) / 0.3) * (1 - guard)  # flexion-relaxation, absent when guarding
    lumbar = np.clip(np.sin(np.clip(phi, 0, None)), 0, None) * (1 - 0.7 * relax)
    lumbar = lumbar + 0.06 * rate(phi) + 0.03 * (rate(tr["alpha_r"]) + rate(tr["alpha_l"]))
    lumbar = lumbar + 0.03 * (rate(tr["kappa_r"]) + rate(tr["kappa_l"]))
    out = np.zeros((n, 4))
    for k, side in enumerate((-1.0, 1.0)):
        asym = 1 + 2.0 * side * tr["psi"]
        out[:, k] = subj.emg_base + 0.12 * lumbar * asym + 0.02 * pain + 0.06 * guard
    for k, side in enumerate("rl"):
        beta = tr[f"beta_{side}"]
        arm = np.clip(np.sin(np.clip(beta, 0, np.pi / 2)), 0, None) + 0.05 * rate(beta)
        out[:, 2 + k] = (
            subj.emg_base + 0.08 * arm + 0.05 * tr["shrug"] + 0.015 * pain + 0.04 * guard
        )
    noise = np.exp(gaussian_filter1d(rng.normal(0, 0.35, size=(n, 4)), sigma=1.5, axis=0))
    return np.clip(out * subj.emg_gain * noise, 1e-4, None)
