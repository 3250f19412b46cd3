"""The generative model of the synthetic EmoPain generator
(:mod:`lbp_motion.datasets.synthetic.emopain`): the exercise protocol, subjects and
their style, the sequence of labelled exercise instances, per-frame pose parameters,
forward kinematics to 22 joints, and sEMG envelopes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d

OTHER, ONE_LEG, REACH, BEND, SIT_TO_STAND, STAND_TO_SIT, SITTING, STANDING, WALKING = range(9)
#: The protocol loop; a recording starts at a random point of it.
_PROTOCOL = (STANDING, ONE_LEG, REACH, BEND, WALKING, STAND_TO_SIT, SITTING, SIT_TO_STAND)
#: Nominal instance durations (s): (low, high) of a uniform draw.
_DURATION_S = {
    OTHER: (1.0, 3.5),
    ONE_LEG: (4.0, 10.0),
    REACH: (4.0, 10.0),
    BEND: (4.5, 11.0),
    SIT_TO_STAND: (2.2, 3.4),
    STAND_TO_SIT: (2.2, 3.4),
    SITTING: (4.0, 9.0),
    STANDING: (4.0, 9.0),
    WALKING: (7.0, 15.0),
}
#: How much an exercise raises the odds of low/high pain and of protective behaviour.
_PAIN_TILT = np.array([0.8, 1.1, 1.1, 1.45, 1.3, 1.15, 0.6, 0.7, 0.95])
_PROT_TILT = np.array([0.5, 1.2, 1.3, 1.7, 1.6, 1.4, 0.25, 0.45, 0.8])
#: Chance that an episode carries each protective type (guarding, hesitation,
#: support/bracing, abrupt motion, rubbing); support is likelier in transfers and bends.
_TYPE_P = np.array([0.85, 0.35, 0.25, 0.12, 0.15])
_GOLDEN = (np.sqrt(5.0) - 1.0) / 2.0


@dataclass(frozen=True)
class _Profile:
    """Label model of one split: patients' mean pain distribution (no, low, high), the
    chance an instance's pain is not reported, and the protective-behaviour rate."""

    patient_pain: tuple[float, float, float]
    unreported_patient: float
    unreported_control: float
    protective_rate: float


_PROFILES = {
    "train": _Profile(
        (0.19, 0.47, 0.34), unreported_patient=0.60, unreported_control=0.50, protective_rate=0.37
    ),
    "validation": _Profile(
        (0.77, 0.20, 0.03), unreported_patient=0.0, unreported_control=0.0, protective_rate=0.23
    ),
}


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
# subjects
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Subject:
    """Per-participant constants (SI units, radians)."""

    patient: bool
    height: float
    prop: float  # leg-length proportion factor
    speed: float
    range_: float
    flex: float  # bending flexibility
    arm: float
    phi0: float  # habitual trunk inclination
    nu0: float  # habitual head flexion
    sway: float
    emg_gain: np.ndarray  # (4,)
    emg_base: float
    pain_probs: np.ndarray  # (3,) personal latent-pain distribution (patients)
    prot: float  # protective-behaviour propensity
    turn_dir: float


def _normalised(p: np.ndarray) -> np.ndarray:
    return p / p.sum()


def _subject(rng: np.random.Generator, patient: bool, profile: _Profile) -> _Subject:
    base = np.asarray(profile.patient_pain)
    return _Subject(
        patient=patient,
        height=float(np.clip(rng.normal(1.71, 0.08), 1.55, 1.90)),
        prop=float(np.exp(rng.normal(0, 0.03))),
        speed=float(np.exp(rng.normal(-0.05 if patient else 0.0, 0.1))),
        range_=float(np.exp(rng.normal(-0.03 if patient else 0.0, 0.08))),
        flex=float(np.exp(rng.normal(0, 0.12))),
        arm=float(np.exp(rng.normal(0, 0.2))),
        phi0=float(rng.normal(0.05, 0.03)),
        nu0=float(rng.normal(0.12, 0.06)),
        sway=float(np.exp(rng.normal(0, 0.25))),
        emg_gain=np.exp(rng.normal(0, 0.3, size=4)),
        emg_base=float(np.exp(rng.normal(np.log(0.02), 0.3))),
        pain_probs=_normalised(base * np.exp(rng.normal(0, 0.35, size=3)))
        if patient
        else np.array([1.0, 0.0, 0.0]),
        prot=float(np.exp(rng.normal(0, 0.35))) if patient else 0.05,
        turn_dir=float(rng.choice([-1.0, 1.0])),
    )


# --------------------------------------------------------------------------------------
# labels: the sequence of instances
# --------------------------------------------------------------------------------------


@dataclass
class _Instance:
    exercise: int
    n: int  # frames
    pain: int  # latent 0/1/2
    label: int  # reported -1/0/1/2
    protective: np.ndarray  # (n,) 0/1
    types: np.ndarray  # (n, 5) 0/1
    hesitation: np.ndarray  # (n,) 0/1 pause frames


def _plan(
    rng: np.random.Generator,
    subj: _Subject,
    profile: _Profile,
    difficult: bool,
    frames: int,
    fps: float,
) -> list[_Instance]:
    """Instances (with labels) filling at least ``frames`` frames."""
    out: list[_Instance] = []
    pos = int(rng.integers(len(_PROTOCOL)))
    total = 0
    exercise = OTHER
    # Low-discrepancy uniforms (golden-ratio sequences from random starts) for the
    # per-instance draws: realised label shares stay close to their expectation.
    u0 = rng.random(3)
    k = 0
    while total < frames:
        u_pain, u_report, u_prot = (u0 + k * _GOLDEN) % 1.0
        k += 1
        exercise = _PROTOCOL[pos % len(_PROTOCOL)] if exercise == OTHER else OTHER
        if exercise != OTHER:
            pos += 1
        # latent pain
        if subj.patient:
            tilt = _PAIN_TILT[exercise] * (1.3 if difficult else 1.0)
            p = subj.pain_probs * np.array([1.0, tilt, tilt])
            pain = int(np.searchsorted(np.cumsum(p / p.sum())[:-1], u_pain, side="right"))
        else:
            pain = 0
        unreported = profile.unreported_patient if subj.patient else profile.unreported_control
        label = -1 if u_report < unreported else pain
        # protective behaviour
        p_prot = profile.protective_rate * subj.prot * (0.3 + 0.5 * pain) * _PROT_TILT[exercise]
        p_prot = min(p_prot * (1.3 if difficult else 1.0), 0.95)
        guarded = u_prot < p_prot
        lo, hi = _DURATION_S[exercise]
        seconds = (
            rng.uniform(lo, hi) / (subj.speed * (1.0 - 0.1 * pain)) * (1.2 if guarded else 1.0)
        )
        n = max(int(round(seconds * fps)), 10)
        prot = np.zeros(n, dtype=np.int64)
        types = np.zeros((n, 5), dtype=np.int64)
        hes = np.zeros(n, dtype=np.int64)
        if guarded:
            for _ in range(1 if rng.random() < 0.75 else 2):
                length = int(n * rng.uniform(0.45, 1.0))
                start = int(rng.integers(0, n - length + 1))
                tp = _TYPE_P * np.array(
                    [1, 1, 2.2 if exercise in (SIT_TO_STAND, STAND_TO_SIT, BEND) else 0.6, 1, 1]
                )
                flags = (rng.random(5) < np.minimum(tp, 0.95)).astype(np.int64)
                if not flags.any():
                    flags[0] = 1
                prot[start : start + length] = 1
                types[start : start + length] = np.maximum(types[start : start + length], flags)
                if flags[1]:  # hesitation: 1-2 pauses inside the episode
                    for _ in range(int(rng.integers(1, 3))):
                        pl = int(rng.uniform(0.4, 1.2) * fps)
                        ps = start + int(rng.integers(0, max(length - pl, 1)))
                        hes[ps : ps + pl] = 1
        out.append(_Instance(exercise, n, pain, label, prot, types, hes))
        total += n
    return out


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


def _instance_motion(
    inst: _Instance,
    subj: _Subject,
    rng: np.random.Generator,
    fps: float,
    seated: bool,
    difficult: bool,
) -> tuple[dict[str, np.ndarray], bool]:
    """Pose-parameter tracks (n,) of one instance, and whether it ends seated."""
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
    ends_seated = seated

    if ex == ONE_LEG:
        c = t_nom / 4.5
        prof = _cycle(c % 1.0, 0.15, 0.6, 0.15)
        right = (np.floor(c).astype(int) + int(rng.integers(2))) % 2 == 0
        lift_a, lift_k = amp * 0.9 * prof, amp * 1.4 * prof
        tr["alpha_r"] += np.where(right, lift_a, 0)
        tr["kappa_r"] += np.where(right, lift_k, 0)
        tr["alpha_l"] += np.where(right, 0, lift_a)
        tr["kappa_l"] += np.where(right, 0, lift_k)
        tr["shift"] = np.where(right, 1.0, -1.0) * 0.035 * prof
        tr["psi"] += _smooth_noise(rng, n, fps, 1.0, (0.02 + 0.015 * pain) * subj.sway) * prof
        for side in "rl":
            tr[f"gamma_{side}"] += 0.35 * prof * (1 - 0.5 * guard)
    elif ex == REACH:
        prof = _cycle((t_nom / 4.0) % 1.0, 0.3, 0.25, 0.3)
        for side in "rl":
            tr[f"beta_{side}"] += amp * 1.45 * prof
            tr[f"eps_{side}"] -= 0.15 * prof
        tr["phi"] += amp * 0.4 * prof
        tr["nu"] -= 0.2 * prof
    elif ex == BEND:
        prof = _cycle((t_nom / 4.5) % 1.0, 0.35, 0.15, 0.35)
        bend = amp * subj.flex * 1.35 * prof
        knee = (0.15 + 0.35 * guard + 0.1 * pain) * prof
        tr["phi"] += bend
        for side in "rl":
            tr[f"kappa_{side}"] += knee
            tr[f"alpha_{side}"] += knee / 2
            tr[f"beta_{side}"] += 0.85 * bend
        tr["nu"] += 0.3 * prof
    elif ex in (SIT_TO_STAND, STAND_TO_SIT):
        a, b = int(0.15 * n), max(int(0.85 * n), int(0.15 * n) + 1)
        u = t_nom - t_nom[a]
        q = _sstep(u / max(u[min(b, n - 1)], 1e-6))  # 0 seated -> 1 standing, time-warped by rate
        if ex == STAND_TO_SIT:
            q = 1 - q
        seat, stand = _neutral(n, subj, True), _neutral(n, subj, False)
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
            tr[k] = base[k] + (tr[k] - (seat[k] if seated else stand[k]))
        qk = _sstep((q - 0.1) / 0.9)  # the knees extend a little later than the hips
        for side in "rl":
            tr[f"kappa_{side}"] = seat[f"kappa_{side}"] * (1 - qk) + stand[f"kappa_{side}"] * qk
        lean = np.sin(np.pi * np.clip(q if ex == SIT_TO_STAND else 1 - q, 0, 1)) ** 1.5
        tr["phi"] += amp * (0.55 + 0.15 * pain) * lean
        ends_seated = ex == STAND_TO_SIT
    elif ex == SITTING:
        pass
    elif ex == STANDING:
        tr["psi"] += _smooth_noise(rng, n, fps, 0.3, 0.5 * sway)
    elif ex == WALKING:
        env = _sstep(np.arange(n) / (0.7 * fps)) * _sstep((n - 1 - np.arange(n)) / (0.7 * fps))
        cad = 1.85 * rate * (1 - 0.15 * guard) * (0.5 + 0.5 * env)  # steps / s
        phase = np.cumsum(np.pi * cad) / fps + rng.uniform(0, 2 * np.pi)
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
        leg_len = rng.uniform(3.0, 5.0)
        turning = (dist % leg_len) > leg_len - 0.8
        tr["turn"] = np.where(turning, subj.turn_dir * np.pi * tr["vel"] / 0.8, 0.0)
    else:  # OTHER: small, slow free movements in the current posture
        for side in "rl":
            tr[f"beta_{side}"] += np.abs(_smooth_noise(rng, n, fps, 0.4, 0.25)) * (1 - 0.5 * guard)
            tr[f"eps_{side}"] += np.abs(_smooth_noise(rng, n, fps, 0.4, 0.25))
            tr[f"gamma_{side}"] += np.abs(_smooth_noise(rng, n, fps, 0.3, 0.08))
        tr["phi"] += _smooth_noise(rng, n, fps, 0.3, 0.05)
        tr["turn"] = _smooth_noise(rng, n, fps, 0.2, 0.15)
    return tr, ends_seated


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
    """Joint positions (T, 22, 3) in metres from the pose-parameter tracks."""
    n = len(tr["phi"])
    h = subj.height
    ankle_h, shank, thigh = 0.039 * h, 0.246 * h * subj.prop, 0.245 * h * subj.prop
    hip_hw, lumbar_l, thor_l, neck_l, head_l, top_l = (
        0.052 * h,
        0.11 * h,
        0.15 * h,
        0.06 * h,
        0.07 * h,
        0.08 * h,
    )
    ua, fa, hand = 0.186 * h, 0.146 * h, 0.06 * h

    theta = theta0 + np.cumsum(tr["turn"]) / fps
    u = np.broadcast_to(np.array([0.0, 1.0, 0.0]), (n, 3))
    f = np.stack([np.cos(theta), np.zeros(n), np.sin(theta)], -1)
    lat = np.stack([np.sin(theta), np.zeros(n), -np.cos(theta)], -1)  # u x f
    base = start + np.cumsum(tr["vel"][:, None] * f, axis=0) / fps  # (T, 3), on the floor

    def leg(alpha, kappa):
        d1 = -np.cos(alpha)[:, None] * u + np.sin(alpha)[:, None] * f
        d2 = -np.cos(alpha - kappa)[:, None] * u + np.sin(alpha - kappa)[:, None] * f
        vert = thigh * np.cos(alpha) + shank * np.cos(alpha - kappa)
        fwd = thigh * np.sin(alpha) + shank * np.sin(alpha - kappa)
        return d1, d2, vert, fwd

    d1r, d2r, vr, fr = leg(tr["alpha_r"], tr["kappa_r"])
    d1l, d2l, vl, fl = leg(tr["alpha_l"], tr["kappa_l"])
    wr = 1.0 / (1.0 + np.exp(-np.clip(30.0 * (vr - vl), -50, 50)))  # the longer leg bears weight
    height = ankle_h + np.maximum(vr, vl)
    fwd = wr * fr + (1 - wr) * fl
    pelvis = base + height[:, None] * u - fwd[:, None] * f + tr["shift"][:, None] * hip_hw * lat
    rho = tr["rho"][:, None]
    lp = np.cos(rho) * lat + np.sin(rho) * f

    j = np.zeros((n, 22, 3))
    j[:, 0] = pelvis
    for side, (hip, knee, ankle), (d1, d2) in (
        (-1.0, (1, 2, 3), (d1r, d2r)),
        (1.0, (4, 5, 6), (d1l, d2l)),
    ):
        j[:, hip] = pelvis + side * hip_hw * lp
        j[:, knee] = j[:, hip] + thigh * d1
        j[:, ankle] = j[:, knee] + shank * d2
    phi, psi, nu = tr["phi"], tr["psi"], tr["nu"]
    t_low = _trunk_dir(tr["lumbar"] * phi, 0.5 * psi, f, u, lat)
    t_up = _trunk_dir(phi, psi, f, u, lat)
    j[:, 7] = pelvis + lumbar_l * t_low
    j[:, 8] = j[:, 7] + thor_l * t_up
    j[:, 19] = j[:, 8] + neck_l * _trunk_dir(phi + 0.4 * nu, psi, f, u, lat)
    t_head = _trunk_dir(phi + nu, psi, f, u, lat)
    j[:, 20] = j[:, 19] + head_l * t_head
    j[:, 21] = j[:, 20] + top_l * t_head
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
    return j


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
