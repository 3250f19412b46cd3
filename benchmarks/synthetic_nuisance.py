"""Does the synthetic TUG ``nuisance`` setting do what it is for? A measurement, not a test.

Run from the repository root (about a minute on one core)::

    python benchmarks/synthetic_nuisance.py [--subjects 30] [--recordings 3] [--seeds 0 1 2]

For the default generator and for ``nuisance=1`` (both with ``missing_rate`` 0.08) it
generates ``subjects x recordings`` recordings per dataset seed, cuts the normalised
windows the TUGDataModule cuts (30 frames, stride 5, mid-hip centre, torso scale,
confidence >= 0.3) and scores, with the subject-wise folds of ``lbp cv --folds 5``
(:func:`lbp_motion.pipelines.cv.subject_folds`, seed 0):

* ``winstats_lr``: a logistic regression on window statistics (per joint and channel
  x', y', visible: mean, standard deviation and mean absolute frame-to-frame change)
  -- a model that can only use how the windows move and look, linearly;
* ``winstats_1nn``: 1-nearest-neighbour on the same (standardised) features -- a model
  that memorises the training windows, hence the training subjects;
* ``static_lr``: a logistic regression on per-recording static features (median
  normalised limb lengths, median posture, per-joint missed rate);
* ``subject_id``: how well the window statistics identify the subject (logistic
  regression trained on each subject's other recordings, tested on its last one;
  chance is 1 / subjects) -- how strong the identity cues are.

Window accuracy and recording accuracy (mean of the window probabilities; 1-NN: the
windows' majority vote) are pooled over the test folds; chance is 1 / 3.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from lbp_motion.datasets.format import read_labels, read_recording  # noqa: E402
from lbp_motion.datasets.layouts import COCO17  # noqa: E402
from lbp_motion.datasets.normalize import body_scale, normalize_skeleton, visible_mask  # noqa: E402
from lbp_motion.datasets.synthetic import generate_tug_dataset  # noqa: E402
from lbp_motion.datasets.windows import window_index  # noqa: E402
from lbp_motion.pipelines.cv import subject_folds  # noqa: E402

CLASSES = ("low", "medium", "high")
MIN_CONF = 0.3


def load(root: Path):
    """Window statistics, per-recording static features, labels, recording ids, subjects."""
    rows = read_labels(root)
    kps = [read_recording(root / f"{r.recording}.npz").keypoints for r in rows]
    scales = [body_scale(k, COCO17, MIN_CONF) for k in kps]
    index = window_index([len(k) for k in kps], 30, 5)
    feats = []
    for r, s in index:
        x = normalize_skeleton(kps[r][s : s + 30], COCO17, min_confidence=MIN_CONF, scale=scales[r])
        x = x.reshape(30, -1)
        feats.append(np.concatenate([x.mean(0), x.std(0), np.abs(np.diff(x, axis=0)).mean(0)]))
    static = []
    for k, sc in zip(kps, scales):
        vis = visible_mask(k, MIN_CONF)
        bones = []
        for a, b in COCO17.edges:
            ok = vis[:, a] & vis[:, b]
            d = (
                np.linalg.norm(k[ok, a, :2] - k[ok, b, :2], axis=-1) / sc
                if ok.any()
                else np.zeros(1)
            )
            bones.append(np.median(d))
        xn = normalize_skeleton(
            k, COCO17, min_confidence=MIN_CONF, scale=sc
        )  # whole-recording centre
        posture = [
            np.median(np.abs(xn[vis[:, j], j, c])) if vis[:, j].any() else 0.0
            for j in range(17)
            for c in (0, 1)
        ]
        static.append(np.concatenate([bones, posture, 1.0 - vis.mean(0)]))
    y = np.array([CLASSES.index(r.label) for r in rows])
    subjects = np.array([r.subject for r in rows])
    rec_num = np.array([int(r.recording.rsplit("_r", 1)[1]) for r in rows])
    return np.array(feats), index[:, 0], np.array(static), y, subjects, rec_num


def _lr(c: float):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000))


def evaluate(root: Path, folds: int) -> dict[str, float]:
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, win_rec, S, y, subjects, rec_num = load(root)
    plan = subject_folds(sorted(set(subjects)), folds, 0)
    n_rec = len(y)
    out: dict[str, float] = {}
    preds = {m: np.full(n_rec, -1) for m in ("winstats_lr", "winstats_1nn", "static_lr")}
    win_hits = {m: [] for m in ("winstats_lr", "winstats_1nn")}
    for test in plan:
        rec_test = np.isin(subjects, test)
        w_test = rec_test[win_rec]
        lr = _lr(0.05).fit(X[~w_test], y[win_rec][~w_test])
        proba = lr.predict_proba(X[w_test])
        win_hits["winstats_lr"].append(proba.argmax(1) == y[win_rec][w_test])
        nn = make_pipeline(StandardScaler(), KNeighborsClassifier(1)).fit(
            X[~w_test], y[win_rec][~w_test]
        )
        nn_pred = nn.predict(X[w_test])
        win_hits["winstats_1nn"].append(nn_pred == y[win_rec][w_test])
        for r in np.flatnonzero(rec_test):
            sel = win_rec[w_test] == r
            preds["winstats_lr"][r] = proba[sel].mean(0).argmax()
            preds["winstats_1nn"][r] = np.bincount(nn_pred[sel], minlength=3).argmax()
        st = _lr(0.1).fit(S[~rec_test], y[~rec_test])
        preds["static_lr"][rec_test] = st.predict(S[rec_test])
    for m, p in preds.items():
        out[f"{m}/recording_acc"] = float(np.mean(p == y))
        if m in win_hits:
            out[f"{m}/window_acc"] = float(np.mean(np.concatenate(win_hits[m])))
    # subject identification: train on each subject's other recordings, test on its last
    last = rec_num == rec_num.max()
    w_last = last[win_rec]
    ids = {s: i for i, s in enumerate(sorted(set(subjects)))}
    sid = np.array([ids[s] for s in subjects])[win_rec]
    ident = _lr(0.05).fit(X[~w_last], sid[~w_last])
    out["subject_id/window_acc"] = float(np.mean(ident.predict(X[w_last]) == sid[w_last]))
    out["subject_id/chance"] = 1.0 / len(ids)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--subjects", type=int, default=30)
    ap.add_argument("--recordings", type=int, default=3)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--missing_rate", type=float, default=0.08)
    ap.add_argument("--nuisance", type=float, default=1.0)
    args = ap.parse_args(argv)
    settings = {"default": 0.0, f"nuisance={args.nuisance:g}": args.nuisance}
    results: dict[str, list[dict[str, float]]] = {k: [] for k in settings}
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        for name, strength in settings.items():
            for seed in args.seeds:
                root = generate_tug_dataset(
                    Path(tmp) / f"{name}-{seed}",
                    num_subjects=args.subjects,
                    recordings_per_subject=args.recordings,
                    missing_rate=args.missing_rate,
                    nuisance=strength,
                    seed=seed,
                )
                results[name].append(evaluate(root, args.folds))
    keys = list(results["default"][0])
    print(
        f"{args.subjects} subjects x {args.recordings} recordings, missing_rate {args.missing_rate}, "
        f"{args.folds} subject-wise folds, dataset seeds {args.seeds} ({time.time() - t0:.0f} s)\n"
    )
    print(f"| metric | {' | '.join(settings)} |\n|---|{'---|' * len(settings)}")
    for k in keys:
        cells = []
        for name in settings:
            v = np.array([r[k] for r in results[name]])
            cells.append(f"{v.mean():.3f} ({' '.join(f'{x:.2f}' for x in v)})")
        print(f"| {k} | {' | '.join(cells)} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
