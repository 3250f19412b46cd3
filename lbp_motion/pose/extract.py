"""``lbp extract-poses VIDEO_DIR --out KEYPOINT_DIR``: videos -> the keypoint format.

Resumable and safe to interrupt: a video whose ``<stem>.npz`` exists in the output
folder is skipped, and every file is written atomically (a temporary file renamed into
place), so an interrupted run leaves no half file. An unreadable or corrupt video is
reported and skipped while the others go on; the exit status is 1 if any failed.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..data.format import LabelRow, read_labels, write_labels, write_recording
from ..data.layouts import get_layout
from ..errors import LbpError
from .tracking import main_subject
from .video import VIDEO_SUFFIXES, VideoError, iter_frames, probe


@dataclass
class ExtractionSummary:
    videos: int = 0
    written: int = 0
    skipped: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    frames: int = 0
    detected: int = 0
    seconds: float = 0.0

    def line(self) -> str:
        rate = self.detected / self.frames if self.frames else 0.0
        fps = self.frames / self.seconds if self.seconds else 0.0
        return (
            f"{self.videos} videos: {self.written} written, {self.skipped} already done, {len(self.failed)} failed; "
            f"{self.frames} frames, detection rate {rate:.1%}, {fps:.1f} frames/s"
        )


def make_estimator(backend: str, model: str | None = None):
    if backend == "mediapipe":
        from .mediapipe_backend import MediaPipePose

        return MediaPipePose(model)
    raise LbpError(f"--backend {backend!r}: unknown pose backend; available: mediapipe")


def extract_video(path: Path, estimator, stride: int = 1, progress: bool = True) -> tuple[np.ndarray, float, tuple[int, int]]:
    """Keypoints (T, J, 3) of the main subject in every ``stride``-th frame (zero rows
    where nobody is found), the output fps (video fps / stride) and the image size."""
    from tqdm import tqdm

    info = probe(path)
    detections = []
    total = -(-info.frame_count // stride) if info.frame_count else None
    for _, time_ms, rgb in tqdm(iter_frames(path, stride), total=total, desc=path.name, disable=not progress, leave=False):
        detections.append(estimator.detect(rgb, time_ms))
    if not detections:
        raise VideoError(f"{path}: no frames decoded")
    num_joints = get_layout(estimator.layout).num_joints
    keypoints = main_subject(detections, (info.width, info.height), num_joints)
    return keypoints, info.fps / stride, (info.width, info.height)


def extract_folder(
    video_dir: str | Path,
    out_dir: str | Path,
    *,
    backend: str = "mediapipe",
    model: str | None = None,
    stride: int = 1,
    labels: str | Path | None = None,
    progress: bool = True,
    estimator=None,
) -> ExtractionSummary:
    video_dir, out_dir = Path(video_dir), Path(out_dir)
    if not video_dir.is_dir():
        raise LbpError(f"{video_dir}: video folder not found")
    videos = sorted(p for p in video_dir.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
    summary = ExtractionSummary(videos=len(videos))
    out_dir.mkdir(parents=True, exist_ok=True)
    todo = [v for v in videos if not (out_dir / f"{v.stem}.npz").is_file()]
    summary.skipped = len(videos) - len(todo)
    if todo:
        estimator = estimator or make_estimator(backend, model)
        try:
            for video in todo:
                start = time.perf_counter()
                try:
                    keypoints, fps, size = extract_video(video, estimator, stride, progress)
                except VideoError as err:
                    summary.failed[video.name] = str(err)
                    print(f"skipped: {err}", file=sys.stderr)
                    continue
                write_recording(
                    out_dir / f"{video.stem}.npz", keypoints, layout=estimator.layout, fps=fps, image_size=size,
                    backend=estimator.name, model=Path(estimator.model).name, backend_version=estimator.version,
                    source_video=video.name, frame_stride=stride,
                )
                summary.written += 1
                summary.frames += len(keypoints)
                summary.detected += int((keypoints[..., 2].max(axis=1) > 0).sum())
                summary.seconds += time.perf_counter() - start
        finally:
            estimator.close()
    if labels is not None:
        _write_labels(Path(labels), out_dir)
    return summary


def _write_labels(labels: Path, out_dir: Path) -> None:
    """Keep the rows of ``labels`` whose recording has an extracted file."""
    rows = read_labels(labels.parent) if labels.name == "labels.csv" else None
    if rows is None:
        with open(labels, newline="") as fh:
            rows = [LabelRow(r["recording"], r["subject"], r["label"], r.get("site") or None) for r in csv.DictReader(fh)]
    done = {p.stem for p in out_dir.glob("*.npz")}
    write_labels(out_dir, [r for r in rows if r.recording in done])


def cmd_extract_poses(argv: list[str]) -> int:
    """``lbp extract-poses``: extract keypoints from a folder of videos."""
    parser = argparse.ArgumentParser(prog="lbp extract-poses", description=__doc__.split("\n\n")[1])
    parser.add_argument("video_dir")
    parser.add_argument("--out", required=True, help="keypoint folder to write")
    parser.add_argument("--backend", default="mediapipe", help="pose backend (default: mediapipe)")
    parser.add_argument("--model", default=None, help="model file of the backend (default: resolved, see docs)")
    parser.add_argument("--labels", default=None, help="a labels.csv whose rows for the extracted videos are copied")
    parser.add_argument("--stride", type=int, default=1, help="use every N-th frame (default: 1)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    if args.stride < 1:
        parser.error(f"--stride {args.stride}: expected at least 1")
    summary = extract_folder(args.video_dir, args.out, backend=args.backend, model=args.model, stride=args.stride,
                             labels=args.labels, progress=not args.no_progress)
    print(summary.line())
    for name, reason in summary.failed.items():
        print(f"failed: {name}: {reason}")
    return 1 if summary.failed else 0
