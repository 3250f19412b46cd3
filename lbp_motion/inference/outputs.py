"""What :func:`.predict.predict` writes for one recording (with ``out_dir``):
``prediction.json``, ``keypoints.npz`` (what the model saw, keypoint format),
``timeline.png`` (window probabilities over time, :func:`timeline_figure`) and
``overlay.mp4`` (the skeleton drawn on the video, :func:`overlay_video`).
"""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from lbp_motion.atomic import atomic_write, write_json
from lbp_motion.datasets.format import Recording, write_recording


def write_outputs(
    out: Path,
    result: dict[str, Any],
    keypoints: np.ndarray,
    layout: str,
    rate: float,
    rec: Recording,
    source: str | Path | None,
    *,
    timeline: bool,
    overlay: bool,
    stride: int,
) -> dict[str, str]:
    """Write the files of one prediction into ``out``; ``result`` gets their paths
    (``files``) and is written last, as ``prediction.json``. ``keypoints`` (at ``rate``)
    are what the model saw; the overlay draws ``rec``'s own frames on ``source`` (a
    video, every ``stride``-th frame) or on a grey canvas. Returns the paths by kind."""
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
    """The recording's own keypoints (all its frames, not resampled) in ``layout``."""
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
