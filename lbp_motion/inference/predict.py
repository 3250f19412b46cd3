"""Prediction for one video or keypoint file with a trained checkpoint.

``predict(checkpoint, path)`` (also ``lbp_motion.predict`` and ``lbp predict-file PATH
--ckpt_path CKPT``):

1. keypoints: a video is run through the pose pipeline (:mod:`.extract`, the
   MediaPipe backend by default); a keypoint file is read (``.npz`` in the keypoint
   format, or what :func:`.importers.import_keypoints` reads);
2. they are converted to the checkpoint's layout and, where their frame rate differs
   from the training data's by more than 5 %, resampled to it (nearest frame), since
   the model's windows count frames;
3. windows, normalisation and input streams come from the checkpoint (``window``,
   ``stride``, ``min_confidence``, ``layout``, ``streams`` (absent: ``["joint"]``),
   ``short_recordings``; computed by the same
   :class:`~lbp_motion.datamodules.tug.PoseWindowDataset` the DataModule uses); a recording
   shorter than one window is an error, or, where the model was trained with
   ``short_recordings: pad``, one padded and masked window;
4. every window gets class probabilities (the task's ``predict_step``); the recording's
   probabilities are their **mean**, and its class the most probable one: the same
   aggregation as ``ClassificationTask``'s recording metrics and ``lbp predict``'s
   ``recording_predictions.csv``;
5. where the pose track allows, the TUG time (:func:`estimate_tug_time`).

Outputs (with ``out_dir``): ``prediction.json``, ``timeline.png`` (window probabilities
over time), ``keypoints.npz`` (what the model saw, keypoint format) and, with
``overlay``, ``overlay.mp4`` (the video with the skeleton drawn).
"""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from lbp_motion.atomic import atomic_write, write_json
from lbp_motion.datasets.format import Recording, write_recording
from lbp_motion.errors import LbpError

PREDICTION_SCHEMA = "lbp_motion.prediction/v1"
AGGREGATION = (
    "mean of the window probabilities; class = argmax (as ClassificationTask's recording metrics)"
)


# -- the TUG time ------------------------------------------------------------------------
TUG_RULE = "hip-over-ankle height (torso lengths) for rise and sit; trunk leaving / regaining the seated posture for start and end; v1"


def _fill_short_gaps(values: np.ndarray, max_gap: int) -> np.ndarray:
    """Linear interpolation over NaN runs of at most ``max_gap`` samples (inside the track)."""
    out = values.copy()
    ok = np.flatnonzero(np.isfinite(values))
    if len(ok) < 2:
        return out
    for a, b in zip(ok[:-1], ok[1:]):
        if 1 < b - a <= max_gap + 1:
            out[a + 1 : b] = np.interp(np.arange(a + 1, b), [a, b], [values[a], values[b]])
    return out


def _moving_median(values: np.ndarray, size: int) -> np.ndarray:
    if size <= 1:
        return values
    half = size // 2
    out = np.full_like(values, np.nan)
    for t in range(len(values)):
        seg = values[max(0, t - half) : t + half + 1]
        seg = seg[np.isfinite(seg)]
        if len(seg) and np.isfinite(values[t]):
            out[t] = np.median(seg)
    return out


def _signals(
    keypoints: np.ndarray, layout: str, min_confidence: float
) -> tuple[np.ndarray, np.ndarray, float]:
    """Per frame: the mid-hip's height above the lower visible ankle in torso lengths,
    and the mid-shoulder position (T, 2) in pixels (NaN where not visible); and the
    torso length (the recording's body scale, as the normalisation computes it)."""
    from lbp_motion.datasets.layouts import get_layout
    from lbp_motion.datasets.normalize import body_scale, visible_mask

    lay = get_layout(layout)
    hips, shoulders = lay.hip_indices(), lay.shoulder_indices()
    if hips is None or shoulders is None:
        raise LbpError(f"layout {layout!r} names no hips or shoulders")
    ankles = [lay.index(n) for n in ("left_ankle", "right_ankle") if n in lay.joints]
    if not ankles:
        raise LbpError(f"layout {layout!r} has no ankles")
    vis = visible_mask(keypoints, min_confidence)
    scale = body_scale(keypoints, lay, min_confidence)
    hip_ok = vis[:, hips[0]] & vis[:, hips[1]]
    hip_y = keypoints[:, list(hips), 1].mean(axis=1)
    ank_y = np.where(vis[:, ankles], keypoints[:, ankles, 1], np.nan)
    ankle = np.full(len(keypoints), np.nan)
    seen = np.isfinite(ank_y).any(axis=1)
    ankle[seen] = np.nanmax(ank_y[seen], axis=1)
    height = (ankle - hip_y) / scale  # image y points down
    height[~hip_ok] = np.nan
    sh_ok = vis[:, shoulders[0]] & vis[:, shoulders[1]]
    mid_sh = keypoints[:, list(shoulders), :2].mean(axis=1).astype(np.float64)
    mid_sh[~sh_ok] = np.nan
    return height.astype(np.float64), mid_sh, float(scale)


def hip_height(keypoints: np.ndarray, layout: str, min_confidence: float = 0.3) -> np.ndarray:
    """(T,) height of the mid-hip above the lower visible ankle, in torso lengths of the
    recording (median mid-shoulder to mid-hip distance); NaN where hips or ankles are
    not visible."""
    return _signals(keypoints, layout, min_confidence)[0]


def estimate_tug_time(
    keypoints: np.ndarray, layout: str, fps: float, *, min_confidence: float = 0.3
) -> dict[str, Any]:
    """The TUG time (first rise to final sit) from the hip trajectory.

    Rule (units: torso lengths, so camera distance does not matter):

    * ``h(t)``: height of the mid-hip above the ankles (:func:`hip_height`; gaps up to
      0.5 s interpolated, 0.3 s moving median). Seated levels: medians of the first and
      last 0.5 s of the track; standing level: the 90th percentile of ``h``.
    * The rise is where ``h`` first crosses half-way from the first seated level to
      standing; the final sit where it last comes back down through half-way to the
      last seated level.
    * **Start**: the last frame before the rise where the mid-shoulder is still within
      0.15 torso lengths of its seated position (first 0.5 s), i.e. where the trunk
      starts to lean forward; without shoulders, where ``h`` was within 10 % of the
      seated-standing range above seated.
    * **End**: the first frame after the final sit where the mid-shoulder is back within
      0.15 torso lengths of its final seated position (last 0.5 s) (or ``h`` within
      10 %).
    * TUG time = end - start.

    Returns ``time_s``, ``rise_s`` (start), ``sit_s`` (end), in seconds from the first
    frame, the levels, ``rule``; where no estimate is possible ``time_s`` is None and
    ``reason`` says why: the person is not seen seated at both ends, hips and ankles
    are seen in under half the frames, or the track starts after the rise / ends
    before the sit.
    """
    out: dict[str, Any] = {"time_s": None, "rise_s": None, "sit_s": None, "rule": TUG_RULE}
    n = len(keypoints)
    if n < 2 or fps <= 0:
        return {**out, "reason": "too few frames"}
    h, shoulder, scale = _signals(keypoints, layout, min_confidence)
    seen = np.isfinite(h)
    if seen.mean() < 0.5:
        return {
            **out,
            "reason": f"hips and ankles seen in {100 * seen.mean():.0f}% of the frames (< 50%)",
        }
    gap, smooth = max(1, int(round(0.5 * fps))), max(1, int(round(0.3 * fps)) | 1)
    h = _moving_median(_fill_short_gaps(h, gap), smooth)
    sh = np.stack(
        [_moving_median(_fill_short_gaps(shoulder[:, i], gap), smooth) for i in range(2)], axis=1
    )
    valid = np.flatnonzero(np.isfinite(h))
    edge = max(1, int(round(0.5 * fps)))
    first, last = valid[0], valid[-1]
    head, tail = slice(first, first + edge), slice(max(first, last - edge + 1), last + 1)
    seated_start, seated_end = float(np.nanmedian(h[head])), float(np.nanmedian(h[tail]))
    standing = float(np.nanpercentile(h, 90))
    out.update(
        seated_start=round(seated_start, 3),
        seated_end=round(seated_end, 3),
        standing=round(standing, 3),
    )
    if standing - seated_start < 0.25:
        return {
            **out,
            "reason": "the person is not seen seated at the start (hip height near standing)",
        }
    if standing - seated_end < 0.25:
        return {
            **out,
            "reason": "the person is not seen seated at the end (hip height near standing)",
        }
    h_lo = np.nan_to_num(h, nan=-np.inf)
    first_up = int(np.flatnonzero(h_lo >= seated_start + 0.5 * (standing - seated_start))[0])
    last_up = int(np.flatnonzero(h_lo >= seated_end + 0.5 * (standing - seated_end))[-1])

    def near(ref_slice: slice, frames: np.ndarray, fallback_level: float) -> np.ndarray:
        """Of ``frames``, those where the person is still in the seated posture of ``ref_slice``."""
        ref = (
            np.nanmedian(sh[ref_slice], axis=0)
            if np.isfinite(sh[ref_slice]).all(axis=1).any()
            else None
        )
        if ref is not None:
            dist = np.linalg.norm(sh[frames] - ref, axis=1) / scale
            return frames[np.nan_to_num(dist, nan=np.inf) <= 0.15]
        return frames[np.nan_to_num(h[frames], nan=np.inf) <= fallback_level]

    before = near(head, np.arange(first, first_up), seated_start + 0.1 * (standing - seated_start))
    if not len(before):
        return {**out, "reason": "the rise starts before the track does"}
    after = near(tail, np.arange(last_up, last + 1), seated_end + 0.1 * (standing - seated_end))
    if not len(after):
        return {**out, "reason": "the sit ends after the track does"}
    rise, sit = int(before[-1]), int(after[0])
    out.update(
        time_s=round((sit - rise) / fps, 3), rise_s=round(rise / fps, 3), sit_s=round(sit / fps, 3)
    )
    return out


# -- prediction -----------------------------------------------------------------------
def _resample(keypoints: np.ndarray, fps: float, target_fps: float) -> np.ndarray:
    """Nearest-frame resampling of (T, J, 3) from ``fps`` to ``target_fps``."""
    n = max(1, int(round(len(keypoints) * target_fps / fps)))
    idx = np.minimum(np.round(np.arange(n) * fps / target_fps).astype(np.int64), len(keypoints) - 1)
    return keypoints[idx]


def _checkpoint_data(checkpoint: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    from lbp_motion.datamodules.tug import NORMALIZATION
    from lbp_motion.tasks.registry import read_checkpoint_info
    from lbp_motion.transforms.streams import DEFAULT_STREAMS, check_streams

    if not checkpoint.is_file():
        raise LbpError(f"{checkpoint}: checkpoint not found")
    info = read_checkpoint_info(checkpoint)
    data = dict(info.get("data") or {})
    missing = [k for k in ("classes", "layout", "window", "stride") if k not in data]
    if "task" not in info or missing:
        raise LbpError(
            f"{checkpoint}: not an lbp_motion checkpoint with its data description (missing {missing})"
        )
    if data.get("normalization", NORMALIZATION) != NORMALIZATION:
        raise LbpError(
            f"{checkpoint}: its data were normalised by {data['normalization']!r}; this lbp_motion predicts "
            f"with {NORMALIZATION!r} only"
        )
    if data.get("unit", "window") != "window":
        raise LbpError(
            f"{checkpoint}: a recording-level model (data.unit={data['unit']!r}); `lbp predict FILE` "
            "predicts with window models only: use `lbp predict --ckpt_path CKPT --data.root FOLDER` on a keypoint folder"
        )
    # checkpoints from before input streams were joint positions only
    data["streams"] = check_streams(
        data.get("streams") or DEFAULT_STREAMS, what=f"{checkpoint}: data streams"
    )
    data.setdefault("short_recordings", "skip")
    return info, data


def load_keypoints(
    path: str | Path,
    *,
    backend: str = "mediapipe",
    backend_options: dict[str, Any] | None = None,
    stride: int = 1,
    fps: float | None = None,
    image_size: tuple[int, int] | None = None,
    layout: str = "coco17",
    progress: bool = True,
) -> Recording:
    """Keypoints of a video (extracted) or of a keypoint file, in ``layout``."""
    from lbp_motion.pose.extract import extract_video
    from lbp_motion.pose.importers import import_keypoints
    from lbp_motion.pose.video import is_video

    path = Path(path)
    if not path.exists():
        raise LbpError(f"{path}: file not found")
    if path.is_file() and is_video(path):
        from lbp_motion.pose.base import create_estimator

        with create_estimator(backend, **(backend_options or {})) as estimator:
            result = extract_video(path, estimator, stride=stride, layout=layout, progress=progress)
        return Recording(
            path.stem, result.keypoints, layout, result.fps, result.image_size, result.meta
        )
    return import_keypoints(path, fps=fps, image_size=image_size, layout=layout)


def predict(
    checkpoint: str | Path,
    path: str | Path | Recording,
    *,
    out_dir: str | Path | None = None,
    backend: str = "mediapipe",
    backend_options: dict[str, Any] | None = None,
    stride: int | None = None,
    fps: float | None = None,
    image_size: tuple[int, int] | None = None,
    timeline: bool = True,
    overlay: bool = False,
    batch_size: int = 64,
    device: str = "cpu",
    progress: bool = True,
) -> dict[str, Any]:
    """Severity of one recording with a trained checkpoint (module docstring).

    Args:
        checkpoint: an ``lbp fit`` checkpoint (it carries classes, layout, windowing).
        path: a video, a keypoint file (``.npz``, COCO results, OpenPose, KERAAL JSON)
            or a :class:`~lbp_motion.datasets.format.Recording`.
        out_dir: where to write ``prediction.json``, ``timeline.png``,
            ``keypoints.npz`` and ``overlay.mp4``; None writes nothing.
        backend, backend_options: the pose backend for videos.
        stride: use every N-th video frame; default: the one that brings the video
            closest to the training data's frame rate (e.g. 2 for 60 fps and 30 fps).
        fps, image_size: for keypoint files that do not carry them (JSON).
        overlay: also write the video with the skeleton drawn (needs ``out_dir``).
        device: ``cpu``, ``cuda`` or ``auto``.
    Returns:
        The content of ``prediction.json`` (a dict).
    """
    import torch

    from lbp_motion.datamodules.tug import PoseWindowDataset
    from lbp_motion.datasets.layouts import convert_layout, get_layout
    from lbp_motion.datasets.normalize import body_scale
    from lbp_motion.datasets.windows import window_starts
    from lbp_motion.pose.video import is_video, probe
    from lbp_motion.tasks.registry import load_task

    checkpoint = Path(checkpoint)
    info, data = _checkpoint_data(checkpoint)
    classes, layout = list(data["classes"]), str(data["layout"])
    window, win_stride = int(data["window"]), int(data["stride"])
    min_conf = float(data.get("min_confidence", 0.3))
    model_fps = data.get("fps")
    source = path if not isinstance(path, Recording) else None
    if isinstance(path, Recording):
        rec = path
    else:
        path = Path(path)
        if stride is None and path.is_file() and is_video(path) and model_fps:
            stride = max(1, int(round(probe(path).fps / float(model_fps))))
        rec = load_keypoints(
            path, backend=backend, backend_options=backend_options, stride=stride or 1,
            fps=fps, image_size=image_size, layout=layout, progress=progress,
        )  # fmt: skip
    keypoints = (
        rec.keypoints if rec.layout == layout else convert_layout(rec.keypoints, rec.layout, layout)
    )
    rate = float(rec.fps)
    resampled_from = None
    if model_fps and abs(rate - float(model_fps)) > 0.05 * float(model_fps):
        keypoints, resampled_from, rate = (
            _resample(keypoints, rate, float(model_fps)),
            rate,
            float(model_fps),
        )
    pad_short = data["short_recordings"] == "pad"
    starts = window_starts(len(keypoints), window, win_stride, pad_short=pad_short)
    if not len(starts):
        raise LbpError(
            f"{rec.name}: {len(keypoints)} frames ({len(keypoints) / rate:.1f} s at {rate:g} fps); "
            f"the model needs at least one window of {window} frames"
        )
    lay = get_layout(layout)
    dataset = PoseWindowDataset(
        [keypoints.astype(np.float32)],
        np.asarray([body_scale(keypoints, lay, min_conf)], dtype=np.float32),
        np.zeros(1, dtype=np.int64),
        np.zeros(1, dtype=np.int64),
        np.stack([np.zeros(len(starts), dtype=np.int64), starts], axis=1),
        layout=layout,
        window=window,
        min_confidence=min_conf,
        streams=data["streams"],
    )
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    task = load_task(checkpoint, map_location=device)
    task.eval()
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False)
    probs = []
    with torch.no_grad():
        for i, batch in enumerate(loader):
            batch = {k: v.to(device) for k, v in batch.items()}
            probs.append(task.predict_step(batch, i)["probs"].float().cpu())
    window_probs = torch.cat(probs).numpy()
    mean = window_probs.mean(axis=0)
    detected = keypoints[..., 2].max(axis=1) > 0
    tug = estimate_tug_time(keypoints, layout, rate, min_confidence=min_conf)
    pose_meta = {k: v for k, v in rec.meta.items() if isinstance(v, (str, int, float, bool))}
    result: dict[str, Any] = {
        "schema": PREDICTION_SCHEMA,
        "recording": rec.name,
        "input": str(source) if source is not None else None,
        "checkpoint": str(checkpoint),
        "task": info.get("task"),
        "classes": classes,
        "predicted": classes[int(mean.argmax())],
        "probabilities": {c: round(float(p), 6) for c, p in zip(classes, mean)},
        "aggregation": AGGREGATION,
        "window": window,
        "stride": win_stride,
        "streams": list(data["streams"]),
        "padded": bool(len(keypoints) < window),
        "fps": rate,
        "resampled_from_fps": resampled_from,
        "frames": int(len(keypoints)),
        "duration_s": round(len(keypoints) / rate, 3),
        "detection_rate": round(float(detected.mean()), 4),
        "windows": [
            {
                "start": int(s),
                "start_s": round(int(s) / rate, 3),
                "end_s": round(
                    min(int(s) + window, len(keypoints)) / rate, 3
                ),  # a padded window ends with the recording
                "predicted": classes[int(p.argmax())],
                "probabilities": {c: round(float(v), 6) for c, v in zip(classes, p)},
            }
            for s, p in zip(starts, window_probs)
        ],
        "tug": tug,
        "pose": pose_meta,
    }
    if out_dir is not None:
        result["files"] = _write_outputs(
            Path(out_dir), result, keypoints, layout, rate, rec, source, timeline=timeline, overlay=overlay,
            stride=int(rec.meta.get("frame_stride", stride or 1) or 1),
        )  # fmt: skip
    elif overlay:
        raise LbpError("overlay: give an output folder")
    return result


def _write_outputs(
    out: Path,
    result,
    keypoints,
    layout,
    rate,
    rec,
    source,
    *,
    timeline: bool,
    overlay: bool,
    stride: int,
) -> dict[str, str]:
    out.mkdir(parents=True, exist_ok=True)
    files = {"json": str(out / "prediction.json"), "keypoints": str(out / "keypoints.npz")}
    meta = {k: v for k, v in rec.meta.items() if isinstance(v, (str, int, float, bool))}
    write_recording(
        out / "keypoints.npz", keypoints, layout=layout, fps=rate, image_size=rec.image_size, **meta
    )
    if timeline:
        files["timeline"] = str(timeline_figure(result, out / "timeline.png"))
    if overlay:
        from lbp_motion.pose.video import is_video

        video = (
            Path(source)
            if source is not None and Path(source).is_file() and is_video(source)
            else None
        )
        files["overlay"] = str(
            overlay_video(
                out / "overlay.mp4",
                rec_keypoints_in(rec, layout),
                layout,
                rec.fps,
                rec.image_size,
                video=video,
                stride=stride,
                result=result,
            )  # fmt: skip
        )
    result["files"] = files
    write_json(out / "prediction.json", _jsonable(result))
    return files


def rec_keypoints_in(rec: Recording, layout: str) -> np.ndarray:
    from lbp_motion.datasets.layouts import convert_layout

    return (
        rec.keypoints if rec.layout == layout else convert_layout(rec.keypoints, rec.layout, layout)
    )


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return None if not math.isfinite(float(value)) else float(value)
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    return value


def timeline_figure(result: dict[str, Any], path: str | Path) -> Path:
    """PNG of the window probabilities over time (one line per class, at the window
    centres), the recording's answer in the title and the TUG rise/sit marks."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    path = Path(path)
    classes = result["classes"]
    centres = [(w["start_s"] + w["end_s"]) / 2 for w in result["windows"]]
    fig, ax = plt.subplots(figsize=(8, 3.2), dpi=100)
    for c in classes:
        ax.plot(
            centres, [w["probabilities"][c] for w in result["windows"]], marker="o", ms=3, label=c
        )
    tug = result.get("tug") or {}
    if tug.get("time_s") is not None:
        for key, label in (("rise_s", "rise"), ("sit_s", "sit")):
            ax.axvline(tug[key], color="grey", ls="--", lw=1)
            ax.text(tug[key], 1.02, label, ha="center", va="bottom", fontsize=8, color="grey")
    ax.set_xlim(0, max(result["duration_s"], centres[-1] if centres else 1))
    ax.set_ylim(0, 1)
    ax.set_xlabel("time (s), window centres")
    ax.set_ylabel("probability")
    p = result["probabilities"][result["predicted"]]
    title = f"{result['recording']}: {result['predicted']} (p = {p:.2f}, mean of {len(centres)} windows)"
    if tug.get("time_s") is not None:
        title += f"; TUG time {tug['time_s']:.1f} s"
    ax.set_title(title, fontsize=9)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def draw_skeleton(
    image: np.ndarray,
    keypoints: np.ndarray,
    layout: str,
    *,
    min_confidence: float = 0.3,
    scale: float = 1.0,
) -> np.ndarray:
    """Draw one skeleton ``(J, 3)`` (pixels of the original frame, times ``scale``) on
    an RGB image in place: left side orange, right side blue, centre white."""
    import cv2

    from lbp_motion.datasets.layouts import get_layout

    lay = get_layout(layout)
    ok = keypoints[:, 2] >= max(min_confidence, 1e-6)
    pts = np.round(keypoints[:, :2] * scale).astype(np.int32)
    thick = max(2, int(round(image.shape[0] / 250)))

    def colour(name: str) -> tuple[int, int, int]:
        return (
            (255, 140, 0)
            if name.startswith("left")
            else (30, 144, 255)
            if name.startswith("right")
            else (255, 255, 255)
        )

    for a, b in lay.edges:
        if ok[a] and ok[b]:
            cv2.line(
                image,
                tuple(map(int, pts[a])),
                tuple(map(int, pts[b])),
                colour(lay.joints[b]),
                thick,
                cv2.LINE_AA,
            )
    for j in np.flatnonzero(ok):
        cv2.circle(
            image, tuple(map(int, pts[j])), thick + 1, colour(lay.joints[j]), -1, cv2.LINE_AA
        )
    return image


def overlay_video(
    path: str | Path,
    keypoints: np.ndarray,
    layout: str,
    fps: float,
    image_size: tuple[int, int],
    *,
    video: str | Path | None = None,
    stride: int = 1,
    result: dict[str, Any] | None = None,
    max_width: int = 960,
) -> Path:
    """An MP4 of the skeleton drawn on the video (row ``i`` of ``keypoints`` on frame
    ``i * stride``), or on a grey canvas of ``image_size`` without a video. With
    ``result``, the current window's most probable class is written in a corner.
    Written atomically."""
    import av

    w, h = image_size
    scale = min(1.0, max_width / w)
    size = (int(round(w * scale)) // 2 * 2, int(round(h * scale)) // 2 * 2)
    windows = (result or {}).get("windows") or []
    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"

    def frames():
        if video is None:
            for _ in range(len(keypoints)):
                yield np.full((h, w, 3), 64, np.uint8)
        else:
            from lbp_motion.pose.video import VideoReader

            with VideoReader(video) as reader:
                for frame in reader.frames(stride):
                    yield frame.image

    def write(tmp: Path) -> None:
        container = av.open(str(tmp), "w")
        try:
            stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
            stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
            for i, image in enumerate(frames()):
                if i >= len(keypoints):
                    break
                canvas = _overlay_frame(image, keypoints[i], layout, size, w, i / fps, windows)
                for packet in stream.encode(av.VideoFrame.from_ndarray(canvas, format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        finally:
            container.close()

    return atomic_write(path, write, suffix=".tmp.mp4")  # the ending tells av the format


def _overlay_frame(image, points, layout, size, width, t, windows) -> np.ndarray:
    """One overlay frame: ``image`` scaled to ``size``, the skeleton, the time and the
    current window's most probable class."""
    import cv2

    ow, oh = size
    canvas = (
        cv2.resize(image, (ow, oh), interpolation=cv2.INTER_AREA)
        if ow != width or image.shape[:2] != (oh, ow)
        else image.copy()
    )
    draw_skeleton(canvas, points, layout, scale=ow / width)
    current = [win for win in windows if win["start_s"] <= t < win["end_s"]]
    label = f"{t:5.1f} s"
    if current:
        win = current[-1]
        label += f"  {win['predicted']} {win['probabilities'][win['predicted']]:.2f}"
    (tw, th), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.7, 2)
    cv2.rectangle(canvas, (4, 4), (16 + tw, 16 + th), (0, 0, 0), -1)
    cv2.putText(
        canvas, label, (10, 10 + th), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 255, 255), 2, cv2.LINE_AA
    )
    return np.ascontiguousarray(canvas)
