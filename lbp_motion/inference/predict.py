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

The TUG time (:mod:`.tug_time`) and the output files (:mod:`.outputs`) live beside this
module; their names stay importable from here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from lbp_motion.datasets.format import Recording
from lbp_motion.errors import LbpError
from lbp_motion.inference.outputs import (  # noqa: F401 - re-exported
    draw_skeleton,
    overlay_video,
    rec_keypoints_in,
    timeline_figure,
    write_outputs,
)
from lbp_motion.inference.tug_time import (  # noqa: F401 - re-exported
    TUG_RULE,
    estimate_tug_time,
    hip_height,
)

PREDICTION_SCHEMA = "lbp_motion.prediction/v1"
AGGREGATION = (
    "mean of the window probabilities; class = argmax (as ClassificationTask's recording metrics)"
)


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
    checkpoint = Path(checkpoint)
    info, data = _checkpoint_data(checkpoint)
    layout = str(data["layout"])
    source = path if not isinstance(path, Recording) else None
    if isinstance(path, Recording):
        rec = path
    else:
        path = Path(path)
        stride = _video_stride(path, stride, data.get("fps"))
        rec = load_keypoints(
            path, backend=backend, backend_options=backend_options, stride=stride or 1,
            fps=fps, image_size=image_size, layout=layout, progress=progress,
        )  # fmt: skip
    keypoints, rate, resampled_from = model_keypoints(rec, layout, data.get("fps"))
    dataset, starts = _window_dataset(keypoints, data, rec.name, rate)
    window_probs = window_probabilities(checkpoint, dataset, batch_size=batch_size, device=device)
    result = prediction_result(
        rec,
        keypoints,
        rate,
        starts,
        window_probs,
        data,
        checkpoint=checkpoint,
        task=info.get("task"),
        source=source,
        resampled_from=resampled_from,
    )
    if out_dir is not None:
        result["files"] = write_outputs(
            Path(out_dir), result, keypoints, layout, rate, rec, source, timeline=timeline, overlay=overlay,
            stride=int(rec.meta.get("frame_stride", stride or 1) or 1),
        )  # fmt: skip
    elif overlay:
        raise LbpError("overlay: give an output folder")
    return result


def _video_stride(path: Path, stride: int | None, model_fps: float | None) -> int | None:
    """``stride``, or for a video without one the stride that brings its frame rate
    closest to the training data's (e.g. 2 for 60 fps and 30 fps)."""
    from lbp_motion.pose.video import is_video, probe

    if stride is None and path.is_file() and is_video(path) and model_fps:
        stride = max(1, int(round(probe(path).fps / float(model_fps))))
    return stride


def model_keypoints(
    rec: Recording, layout: str, model_fps: float | None
) -> tuple[np.ndarray, float, float | None]:
    """The recording's keypoints as the model reads them: in the checkpoint's
    ``layout`` and, where their frame rate differs from the training data's
    (``model_fps``) by more than 5 %, resampled to it. Returns ``(keypoints, fps,
    resampled_from_fps)`` (the last None when not resampled)."""
    from lbp_motion.datasets.layouts import convert_layout

    keypoints = (
        rec.keypoints if rec.layout == layout else convert_layout(rec.keypoints, rec.layout, layout)
    )
    rate = float(rec.fps)
    if model_fps and abs(rate - float(model_fps)) > 0.05 * float(model_fps):
        return _resample(keypoints, rate, float(model_fps)), float(model_fps), rate
    return keypoints, rate, None


def _window_dataset(keypoints: np.ndarray, data: dict[str, Any], name: str, rate: float):
    """The recording's windows as the checkpoint's DataModule made them (window,
    stride, normalisation, streams, short recordings); ``(dataset, window starts)``."""
    from lbp_motion.datamodules.tug import PoseWindowDataset
    from lbp_motion.datasets.layouts import get_layout
    from lbp_motion.datasets.normalize import body_scale
    from lbp_motion.datasets.windows import window_starts

    layout, window = str(data["layout"]), int(data["window"])
    min_conf = float(data.get("min_confidence", 0.3))
    pad_short = data["short_recordings"] == "pad"
    starts = window_starts(len(keypoints), window, int(data["stride"]), pad_short=pad_short)
    if not len(starts):
        raise LbpError(
            f"{name}: {len(keypoints)} frames ({len(keypoints) / rate:.1f} s at {rate:g} fps); "
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
    return dataset, starts


def window_probabilities(
    checkpoint: Path, dataset, *, batch_size: int = 64, device: str = "cpu"
) -> np.ndarray:
    """(windows, classes) class probabilities of the checkpoint's task (its
    ``predict_step``) for every window of ``dataset``; ``device`` ``auto`` picks CUDA
    when there is one."""
    import torch

    from lbp_motion.tasks.registry import load_task

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
    return torch.cat(probs).numpy()


def prediction_result(
    rec: Recording,
    keypoints: np.ndarray,
    rate: float,
    starts: np.ndarray,
    window_probs: np.ndarray,
    data: dict[str, Any],
    *,
    checkpoint: Path,
    task: str | None,
    source: str | Path | None,
    resampled_from: float | None,
) -> dict[str, Any]:
    """The content of ``prediction.json`` (without ``files``): the recording's class
    probabilities (:data:`AGGREGATION`), its windows', the TUG time and the pose track's
    description."""
    classes, window = list(data["classes"]), int(data["window"])
    min_conf = float(data.get("min_confidence", 0.3))
    mean = window_probs.mean(axis=0)
    detected = keypoints[..., 2].max(axis=1) > 0
    tug = estimate_tug_time(keypoints, str(data["layout"]), rate, min_confidence=min_conf)
    pose_meta = {k: v for k, v in rec.meta.items() if isinstance(v, (str, int, float, bool))}
    return {
        "schema": PREDICTION_SCHEMA,
        "recording": rec.name,
        "input": str(source) if source is not None else None,
        "checkpoint": str(checkpoint),
        "task": task,
        "classes": classes,
        "predicted": classes[int(mean.argmax())],
        "probabilities": {c: round(float(p), 6) for c, p in zip(classes, mean)},
        "aggregation": AGGREGATION,
        "window": window,
        "stride": int(data["stride"]),
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
