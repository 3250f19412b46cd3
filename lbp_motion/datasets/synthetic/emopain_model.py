"""The label model of the synthetic EmoPain generator
(:mod:`lbp_motion.datasets.synthetic.emopain`): the exercise protocol, the splits' label
profiles, subjects and their style, and the sequence of labelled exercise instances.
The motion they drive is in :mod:`.emopain_motion`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

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
