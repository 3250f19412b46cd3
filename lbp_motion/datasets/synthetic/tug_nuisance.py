"""The simulated 2D detector of the synthetic TUG generator (pixel noise,
confidences, missed joints) and its opt-in ``nuisance`` setting: strong
subject-level traits unrelated to the label (body proportions, gait style, a camera
placement per subject, tracking errors, a per-subject missed-joint profile), drawn from
``(seed, subject)`` only (docs/data-format.md)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lbp_motion.datasets.synthetic.tug_body import _J, _Camera, _Motion, _StyleExtra, _World

# --------------------------------------------------------------------------------------
# the detector
# --------------------------------------------------------------------------------------


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
    xy = uv + rng.normal(0.0, 1.0, size=uv.shape) * (
        noise_px if nz is None else noise_px * nz.noise
    )
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
    bias: (
        np.ndarray
    )  # (17, 3) m: per-joint detector offset (clothing), body frame (forward, up, left)
    swap_rate: float  # per frame: a left/right swap of a limb begins
    # missed joints: per-subject rate factor, per-joint weights, run share and length
    miss: tuple[float, np.ndarray, float, float] | None


def _nuisance_strengths(nuisance: float | dict[str, float]) -> dict[str, float]:
    """``nuisance`` as a strength per part (every part for a number)."""
    if isinstance(nuisance, dict):
        unknown = sorted(set(nuisance) - set(NUISANCE_PARTS))
        if unknown:
            raise ValueError(
                f"nuisance: unknown parts {unknown}; expected some of {list(NUISANCE_PARTS)}"
            )
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
        (
            "ankle_h",
            "shank",
            "thigh",
            "hip_hw",
            "torso",
            "shoulder_hw",
            "upper_arm",
            "forearm",
            "neck",
            "height",
        ),
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
        bias[None, :, 0:1] * world.forward
        + bias[None, :, 1:2] * up
        + bias[None, :, 2:3] * world.left
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
    vis: np.ndarray,
    missing_rate: float,
    miss: tuple[float, np.ndarray, float, float],
    rng: np.random.Generator,
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
