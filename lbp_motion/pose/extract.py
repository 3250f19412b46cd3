"""Videos -> keypoint files: the resumable runner behind ``lbp extract-poses``.

For each video: read frames (every ``stride``-th), run the pose backend on batches of
frames, keep one main subject (:mod:`.tracking`), convert to the output layout
(``coco17`` by default) and write ``<out>/<video stem>.npz`` atomically with what
made it (backend, model, versions, stride, tracking rule). A video whose file exists
and was made from the same source file with the same settings is skipped, so an
interrupted run picks up where it stopped; a video that cannot be read is reported
and skipped while the others go on.
"""

from __future__ import annotations

import hashlib
import math
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lbp_motion._version import __version__
from lbp_motion.datasets.format import (
    DataFormatError,
    LabelRow,
    check_labels_merge,
    merge_labels,
    read_labels,
    read_recording,
    write_labels,
    write_recording,
)
from lbp_motion.datasets.layouts import convert_layout, get_layout
from lbp_motion.pose.base import BackendUnavailable, PoseEstimator, create_estimator
from lbp_motion.pose.tracking import TRACKING_RULE, main_subject
from lbp_motion.pose.video import VideoError, VideoReader, is_video, list_videos, probe


@dataclass
class ExtractionResult:
    """One video's main-subject keypoints and how they were made."""

    keypoints: np.ndarray  # (T, J, 3) in ``layout``
    layout: str
    fps: float  # of the rows: the video's fps / stride
    image_size: tuple[int, int]
    meta: dict[str, Any]
    seconds: float  # decoding + inference + tracking

    @property
    def frames(self) -> int:
        return int(len(self.keypoints))

    @property
    def detected(self) -> int:
        return int((self.keypoints[..., 2].max(axis=1) > 0).sum()) if len(self.keypoints) else 0

    def write(self, path: str | Path) -> Path:
        return write_recording(
            path,
            self.keypoints,
            layout=self.layout,
            fps=self.fps,
            image_size=self.image_size,
            **self.meta,
        )


def _progress(total: int | None, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(
        total=total, desc=desc, unit="frame", disable=not enabled, leave=False, file=sys.stderr
    )


def extract_video(
    path: str | Path,
    estimator: PoseEstimator,
    *,
    stride: int = 1,
    layout: str = "coco17",
    batch_size: int | None = None,
    progress: bool = True,
) -> ExtractionResult:
    """Poses of the main subject of one video (see the module docstring).

    Rows are frames ``0, stride, 2 * stride, ...``; a frame where the subject was not
    found is a row of zeros (confidence 0), so row ``i`` is always at time
    ``i * stride / video fps``.
    """
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    path = Path(path)
    get_layout(layout)
    batch = max(1, batch_size or estimator.batch_size)
    started = time.perf_counter()
    with VideoReader(path) as reader:
        info = reader.info
        estimator.start_video(info.fps / stride, info.image_size)
        detections, times = [], []
        frames, stamps = [], []
        total = math.ceil(info.frame_count / stride) if info.frame_count else None
        with _progress(total, path.name, progress) as bar:

            def flush() -> None:
                if frames:
                    detections.extend(estimator.estimate(frames, stamps))
                    bar.update(len(frames))
                    frames.clear()
                    stamps.clear()

            for frame in reader.frames(stride):
                frames.append(frame.image)
                stamps.append(int(round(frame.time_s * 1000)))
                times.append(frame.time_s)
                if len(frames) >= batch:
                    flush()
            flush()
    if not detections:
        raise VideoError(f"{path}: the video holds no frames")
    src_layout = get_layout(estimator.layout)
    subject = main_subject(detections, src_layout.num_joints, np.asarray(times) - times[0])
    keypoints = convert_layout(subject.keypoints, src_layout.name, layout)
    seconds = time.perf_counter() - started
    detected = keypoints[..., 2].max(axis=1) > 0
    meta = {
        **estimator.info(),
        "lbp_motion_version": __version__,
        "source_video": path.name,
        "source_bytes": path.stat().st_size,
        "source_fps": info.fps,
        "source_frames": len(detections) * stride if info.frame_count <= 0 else info.frame_count,
        "frame_stride": stride,
        "rotation": info.rotation,
        "video_reader": info.reader,
        "tracking": TRACKING_RULE,
        "num_tracks": subject.num_tracks,
        "detection_rate": float(detected.mean()),
    }
    return ExtractionResult(keypoints, layout, info.fps / stride, info.image_size, meta, seconds)


@dataclass
class ExtractionSummary:
    """What a folder run did; :meth:`line` is the summary printed by the command."""

    videos: int = 0
    extracted: list[str] = field(default_factory=list)
    done: list[str] = field(default_factory=list)  # already there from an earlier run
    failed: list[tuple[str, str]] = field(default_factory=list)  # (video, reason)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # not extracted on purpose
    frames: int = 0
    detected: int = 0
    seconds: float = 0.0

    @property
    def detection_rate(self) -> float:
        return self.detected / self.frames if self.frames else float("nan")

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else float("nan")

    def line(self) -> str:
        parts = [
            f"{len(self.extracted)} written",
            f"{len(self.done)} already done",
            f"{len(self.failed)} failed",
        ]
        if self.skipped:
            parts.append(f"{len(self.skipped)} skipped")
        text = f"{self.videos} videos: " + ", ".join(parts) + f"; {self.frames} frames"
        if self.frames:
            text += f", detection rate {100 * self.detection_rate:.1f}%, {self.frames_per_second:.1f} frames/s"
        return text


def _done(out: Path, video: Path, settings: dict[str, Any]) -> tuple[bool, str]:
    """Whether ``out`` is a finished extraction of ``video`` with ``settings``; else why not."""
    if not out.is_file():
        return False, "missing"
    try:
        rec = read_recording(out)
    except DataFormatError as err:
        return False, f"unreadable ({err})"
    size = rec.meta.get("source_bytes")
    if size is not None and int(size) != video.stat().st_size:
        return False, "the video changed"
    for key, want in settings.items():
        have = rec.meta.get(key, rec.layout if key == "layout" else None)
        if have is not None and str(have) != str(want):
            return (
                True,
                f"kept although made with {key}={have} (now {want}); use --overwrite to redo",
            )
    return True, ""


def _read_label_file(path: Path) -> list[LabelRow]:
    """Rows of a labels CSV of any name (validated like ``labels.csv``)."""
    if not path.is_file():
        raise DataFormatError(f"{path}: file not found")
    if path.name == "labels.csv":
        return read_labels(path.parent)
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copyfile(path, Path(tmp) / "labels.csv")
        try:
            return read_labels(tmp)
        except DataFormatError as err:
            raise DataFormatError(
                str(err).replace(str(Path(tmp) / "labels.csv"), str(path))
            ) from None


def _videos_in(video_dir: Path) -> tuple[list[Path], Path]:
    """The videos of a folder (or the one video file) and the folder they are in."""
    if video_dir.is_file():
        return [video_dir], video_dir.parent
    if video_dir.is_dir():
        return list_videos(video_dir), video_dir
    raise DataFormatError(f"{video_dir}: folder not found")


def _listed_videos(
    videos: list[Path],
    rows: list[LabelRow],
    label_path: Path,
    summary: ExtractionSummary,
    say: Callable[[str], None],
) -> list[Path]:
    """The videos that ``rows`` name (by stem); the others are reported as skipped."""
    listed = {r.recording for r in rows}
    for v in videos:
        if v.stem not in listed:
            summary.skipped.append((v.name, f"no row in {label_path}"))
            say(f"skipped {v}: no row in {label_path}")
    return [v for v in videos if v.stem in listed]


class _LazyEstimator:
    """The pose backend of a folder run: the one given, or one created (and closed at
    the end) only when a video needs extracting, after that video was probed (an
    unreadable video fails before a model is loaded)."""

    def __init__(
        self, backend: str, options: dict[str, Any] | None, estimator: PoseEstimator | None
    ) -> None:
        self.backend, self.options = backend, options or {}
        self.estimator, self.owned = estimator, estimator is None

    def get(self, video: Path) -> PoseEstimator:
        if self.estimator is None:
            probe(video)
            self.estimator = create_estimator(self.backend, **self.options)
        return self.estimator

    def close(self) -> None:
        if self.owned and self.estimator is not None:
            self.estimator.close()


def _videos_to_extract(
    videos: list[Path],
    out_dir: Path,
    settings: dict[str, Any],
    overwrite: bool,
    summary: ExtractionSummary,
    say: Callable[[str], None],
) -> Iterator[tuple[Path, Path]]:
    """``(video, keypoint file)`` for each video to extract, one at a time; a video
    whose stem an earlier one has is counted as failed, one already extracted with
    ``settings`` (unless ``overwrite``) as done (:func:`_done`)."""
    stems: dict[str, Path] = {}
    for video in videos:
        if video.stem in stems:
            reason = f"same recording name as {stems[video.stem].name}"
            summary.failed.append((video.name, reason))
            say(f"FAILED {video}: {reason}")
            continue
        stems[video.stem] = video
        out = out_dir / f"{video.stem}.npz"
        if not overwrite:
            finished, note = _done(out, video, settings)
            if finished:
                summary.done.append(video.stem)
                if note:
                    say(f"{out}: {note}")
                continue
        yield video, out


def _extract_one(
    video: Path,
    out: Path,
    estimators: _LazyEstimator,
    summary: ExtractionSummary,
    say: Callable[[str], None],
    **options: Any,
) -> None:
    """Extract ``video`` into ``out`` (``options``: those of :func:`extract_video`) and
    count it in ``summary``; a video that fails is reported and counted as failed (a
    missing backend and an interrupt stop the run)."""
    try:
        result = extract_video(video, estimators.get(video), **options)
        result.write(out)
    except (KeyboardInterrupt, BackendUnavailable):
        raise
    except VideoError as err:
        summary.failed.append((video.name, str(err)))
        say(f"FAILED {err}")
        return
    except Exception as err:  # a broken file can break a decoder or backend anywhere
        summary.failed.append((video.name, f"{type(err).__name__}: {err}"))
        say(f"FAILED {video}: {type(err).__name__}: {err}")
        return
    summary.extracted.append(video.stem)
    summary.frames += result.frames
    summary.detected += result.detected
    summary.seconds += result.seconds
    say(
        f"{video.name}: {result.frames} frames, detection rate {100 * result.detected / max(result.frames, 1):.1f}%, "
        f"{result.frames / max(result.seconds, 1e-9):.1f} frames/s -> {out}"
    )


def _write_folder_labels(
    out_dir: Path,
    rows: list[LabelRow],
    label_path: Path,
    merge: bool,
    say: Callable[[str], None],
) -> None:
    """``out_dir/labels.csv`` with the rows of the recordings extracted (merged, or
    replaced with ``merge`` False); the recordings without a keypoint file are named."""
    present = [r for r in rows if (out_dir / f"{r.recording}.npz").is_file()]
    missing = [r.recording for r in rows if not (out_dir / f"{r.recording}.npz").is_file()]
    if present and merge:
        merge_labels(out_dir, present, source=label_path)
    elif present:
        write_labels(out_dir, present)
    if missing:
        say(
            f"{len(missing)} recordings of {label_path} have no keypoint file: {', '.join(missing[:5])}"
            + (" ..." if len(missing) > 5 else "")
        )


def extract_folder(
    video_dir: str | Path,
    out_dir: str | Path,
    *,
    backend: str = "mediapipe",
    backend_options: dict[str, Any] | None = None,
    labels: str | Path | None = None,
    stride: int = 1,
    layout: str = "coco17",
    batch_size: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
    estimator: PoseEstimator | None = None,
    log: Callable[[str], None] | None = None,
    merge: bool = True,
) -> ExtractionSummary:
    """Extract every video of ``video_dir`` (or one video file) into ``out_dir``.

    Args:
        labels: a labels CSV (docs/data-format.md) naming recordings by video stem;
            default: ``video_dir/labels.csv`` if present. With labels, only listed
            videos are extracted and the rows of the recordings present are merged
            into ``out_dir/labels.csv`` (:func:`~lbp_motion.datasets.format.merge_labels`:
            rows already there are kept, new ones added; a recording listed there with
            other fields is refused before anything is extracted), so ``out_dir`` is a
            ready TUG folder.
        backend, backend_options: the pose backend by name and its options (created
            only if a video needs extracting); or pass a ready ``estimator``.
        overwrite: redo videos already extracted.
        log: where messages go (default: stderr).
        merge: merge the rows into ``out_dir/labels.csv`` (above); False replaces it with
            the rows of the recordings present (for a folder that mirrors ``labels``,
            such as the cache of :func:`keypoints_for_video_folder`).
    """
    say = log or (lambda msg: print(msg, file=sys.stderr))
    videos, folder = _videos_in(Path(video_dir))
    out_dir = Path(out_dir)
    label_path = Path(labels) if labels is not None else folder / "labels.csv"
    rows = _read_label_file(label_path) if (labels is not None or label_path.is_file()) else None
    summary = ExtractionSummary(videos=len(videos))
    if rows is not None and merge:
        # refuse a labels file that conflicts with out_dir's before any video is extracted
        # (merge_labels checks again when it writes)
        check_labels_merge(out_dir, rows, source=label_path)
    if rows is not None:
        videos = _listed_videos(videos, rows, label_path, summary, say)
    estimators = _LazyEstimator(backend, backend_options, estimator)
    settings = {
        "backend": backend if estimator is None else estimator.name,
        "frame_stride": stride,
        "layout": layout,
    }
    try:
        for video, out in _videos_to_extract(videos, out_dir, settings, overwrite, summary, say):
            _extract_one(
                video,
                out,
                estimators,
                summary,
                say,
                stride=stride,
                layout=layout,
                batch_size=batch_size,
                progress=progress,
            )
    finally:
        estimators.close()
    if rows is not None:
        _write_folder_labels(out_dir, rows, label_path, merge, say)
    return summary


def _video_folder_key(root: Path, backend: str, stride: int, layout: str) -> str:
    blob = f"{root.resolve()}|{backend}|{stride}|{layout}"
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def keypoints_for_video_folder(
    root: str | Path,
    *,
    backend: str = "mediapipe",
    stride: int = 1,
    layout: str = "coco17",
    cache: str | Path | None = None,
    progress: bool = True,
) -> Path:
    """The keypoint folder to read for ``root`` (used by ``TUGDataModule``).

    ``root`` itself unless it holds videos and no keypoint files; then the videos
    (with ``root/labels.csv``) are extracted on first use into
    ``<cache>/poses/<folder name>-<hash of its path and the settings>/`` and that
    folder is returned. Later calls only extract videos that are new or changed.
    """
    root = Path(root)
    if not root.is_dir() or any(root.glob("*.npz")):
        return root
    videos = [p for p in root.iterdir() if p.is_file() and is_video(p)]
    if not videos:
        return root
    if not (root / "labels.csv").is_file():
        raise DataFormatError(
            f"{root}: a folder of videos needs a labels.csv naming each video (by file stem)"
        )
    from lbp_motion.pose.bundle import cache_root

    base = Path(cache) if cache is not None else cache_root()
    out = base / "poses" / f"{root.name}-{_video_folder_key(root, backend, stride, layout)}"
    # the cache mirrors root/labels.csv: an edited label replaces the old one
    summary = extract_folder(
        root, out, backend=backend, stride=stride, layout=layout, progress=progress, merge=False
    )
    if summary.failed:
        names = ", ".join(f"{name} ({why})" for name, why in summary.failed[:3])
        raise DataFormatError(
            f"{root}: {len(summary.failed)} videos could not be extracted: {names}"
        )
    return out
