"""Command-line handlers of the pose pipeline (argparse; registered as ``lbp``
subcommands in :mod:`lbp_motion.cli.commands`):

* ``lbp extract-poses VIDEO_DIR --out_dir DIR [--backend B] [--labels CSV] [--stride N]``
* ``lbp predict-file PATH --ckpt_path CKPT [--out_dir DIR] [--overlay]``: a video or
  keypoint file (``lbp predict --config ...`` is LightningCLI's prediction over a
  DataModule). The 0.x form ``lbp predict PATH --ckpt CKPT`` still works for one release.

Exit status: 0 success; 1 some videos could not be extracted (listed); 2 invalid
input or settings (one line ``lbp: error: ...``, printed by ``lbp``'s entry point).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from lbp_motion.cli.commands import add_ckpt_path, add_flag, add_out_dir


def _backend_options(args: argparse.Namespace) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if args.model:
        options["model"] = args.model
    if args.device:
        options["device"] = args.device
    if getattr(args, "num_poses", None):
        options["num_poses"] = args.num_poses
    return options


def _add_backend_arguments(parser: argparse.ArgumentParser) -> None:
    from lbp_motion.pose.base import available_backends

    parser.add_argument(
        "--backend",
        default="mediapipe",
        help=f"pose backend: {', '.join(available_backends())} (default: mediapipe)",
    )
    parser.add_argument(
        "--model",
        default=None,
        help="the backend's model file (mediapipe: a .task bundle; detectron2: weights); "
        "default: resolved as docs/pose.md says",
    )
    parser.add_argument(
        "--device", default=None, help="cpu, cuda or auto (backends that support it)"
    )
    add_flag(
        parser,
        "--num_poses",
        "--num-poses",
        type=int,
        default=None,
        help="people the mediapipe landmarker looks for per frame (default 2)",
    )
    add_flag(parser, "--no_progress", "--no-progress", action="store_true", help="no progress bar")


def cmd_extract_poses(argv: list[str]) -> int:
    """``lbp extract-poses``: videos -> keypoint files (resumable; docs/pose.md)."""
    from lbp_motion.pose.extract import extract_folder

    parser = argparse.ArgumentParser(
        prog="lbp extract-poses",
        description="Extract one main subject's 2D keypoints from every video of VIDEO_DIR into "
        "DIR/<video stem>.npz (the keypoint format). Resumable: videos already extracted are "
        "skipped; files are written atomically; unreadable videos are reported and skipped "
        "(exit status 1).",
    )
    parser.add_argument("video_dir", help="a folder of videos (or one video file)")
    add_out_dir(parser, "keypoint folder to write", old=("--out",))
    parser.add_argument(
        "--labels",
        default=None,
        help="labels CSV naming recordings by video stem (default: VIDEO_DIR/labels.csv if "
        "present); only listed videos are extracted and DIR/labels.csv gets their rows",
    )
    parser.add_argument("--stride", type=int, default=1, help="use every N-th frame (default: 1)")
    parser.add_argument(
        "--layout", default="coco17", help="joint layout to write (default: coco17)"
    )
    add_flag(
        parser,
        "--batch_size",
        "--batch-size",
        type=int,
        default=None,
        help="frames per backend call",
    )
    parser.add_argument("--overwrite", action="store_true", help="redo videos already extracted")
    _add_backend_arguments(parser)
    args = parser.parse_args(argv)
    if args.stride < 1:
        parser.error(f"--stride {args.stride}: expected at least 1")
    summary = extract_folder(
        args.video_dir, args.out_dir, backend=args.backend, backend_options=_backend_options(args),
        labels=args.labels, stride=args.stride, layout=args.layout, batch_size=args.batch_size,
        overwrite=args.overwrite, progress=not args.no_progress,
    )  # fmt: skip
    print(summary.line())
    for name, reason in summary.failed:
        print(f"failed: {name}: {reason}")
    return 1 if summary.failed else 0


def predict_file_parser() -> argparse.ArgumentParser:
    """The command line of ``lbp predict-file``."""
    parser = argparse.ArgumentParser(
        prog="lbp predict-file",
        description="Predict the severity of one video or keypoint file (.npz, COCO results / OpenPose / "
        "KERAAL JSON) with a trained checkpoint: class probabilities of the recording (mean of its "
        "windows'), per-window probabilities, the TUG time where the pose track allows; writes "
        "prediction.json, timeline.png and keypoints.npz (and overlay.mp4 with --overlay). "
        "`lbp predict --config ...` predicts over a DataModule's recordings instead.",
    )
    parser.add_argument("path", help="a video or a keypoint file")
    add_ckpt_path(parser, old=("--ckpt",))
    add_flag(
        parser,
        "--out_dir",
        "--out",
        default=None,
        metavar="DIR",
        help="output folder (default: predictions/<file stem>)",
    )
    parser.add_argument(
        "--overlay", action="store_true", help="also write overlay.mp4: the skeleton on the video"
    )
    add_flag(
        parser,
        "--no_timeline",
        "--no-timeline",
        action="store_true",
        help="do not draw timeline.png",
    )
    parser.add_argument(
        "--stride",
        type=int,
        default=None,
        help="use every N-th video frame (default: matches the checkpoint's frame rate)",
    )
    parser.add_argument(
        "--fps", type=float, default=None, help="frame rate of a JSON keypoint file (default 30)"
    )
    add_flag(
        parser,
        "--image_size",
        "--image-size",
        type=int,
        nargs=2,
        metavar=("W", "H"),
        default=None,
        help="image size of a JSON keypoint file with normalised coordinates",
    )
    add_flag(
        parser,
        "--batch_size",
        "--batch-size",
        type=int,
        default=64,
        help="windows per forward pass",
    )
    parser.add_argument(
        "--json", action="store_true", help="print the whole prediction as JSON on stdout"
    )
    _add_backend_arguments(parser)
    return parser


def _prediction_line(result: dict[str, Any]) -> str:
    """The one-line answer: the class, its probabilities, the windows and the TUG time."""
    probs = ", ".join(f"{c} {p:.2f}" for c, p in result["probabilities"].items())
    tug = result["tug"]
    tug_text = (
        f"TUG time {tug['time_s']:.1f} s"
        if tug.get("time_s") is not None
        else f"no TUG time ({tug.get('reason')})"
    )
    return f"{result['recording']}: {result['predicted']} ({probs}; {len(result['windows'])} windows); {tug_text}"


def cmd_predict_file(argv: list[str]) -> int:
    """``lbp predict-file PATH --ckpt_path CKPT``: severity of one video or keypoint file."""
    from lbp_motion.inference.predict import predict

    parser = predict_file_parser()
    args = parser.parse_args(argv)
    if args.stride is not None and args.stride < 1:
        parser.error(f"--stride {args.stride}: expected at least 1")
    out = Path(args.out_dir) if args.out_dir else Path("predictions") / Path(args.path).stem
    result = predict(
        args.ckpt_path, args.path, out_dir=out, backend=args.backend, backend_options=_backend_options(args),
        stride=args.stride, fps=args.fps, image_size=tuple(args.image_size) if args.image_size else None,
        timeline=not args.no_timeline, overlay=args.overlay, batch_size=args.batch_size,
        device=args.device or "cpu", progress=not args.no_progress,
    )  # fmt: skip
    if args.json:
        print(json.dumps({k: v for k, v in result.items()}, indent=2, default=str))
    else:
        print(_prediction_line(result))
    print(f"Results: {out.resolve()}", file=sys.stdout)
    return 0
