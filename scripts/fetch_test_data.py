"""Fetch the test files that come from the package registry into the cache, once.

* ``sports2d==0.8.34`` (BSD-3-Clause): its wheel holds ``Sports2D/Demo/demo.mp4``, a
  real walking video (1768x994, 30 fps, 230 frames);
* ``mediapipe==0.10.21``: its wheel holds the BlazePose detector and landmark models
  from which the offline pose-landmarker bundle is built (see docs).

Wheels are downloaded with ``pip download --no-deps`` (never installed) into
``$LBP_CACHE/registry``; the members the tests need are unpacked beside them. Files
already present are not fetched again. Exit status 1 if anything is missing afterwards
(the Makefile turns that into a warning: tests that need a file skip with a reason).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

WHEELS = {
    "sports2d==0.8.34": ["Sports2D/Demo/demo.mp4"],
    "mediapipe==0.10.21": [
        "mediapipe/modules/pose_landmark/pose_landmark_full.tflite",
        "mediapipe/modules/pose_detection/pose_detection.tflite",
    ],
}


def cache_root() -> Path:
    base = os.environ.get("LBP_CACHE") or Path.home() / ".cache" / "lbp_motion"
    return Path(base) / "registry"


def fetch(requirement: str, members: list[str], root: Path) -> bool:
    name, version = requirement.split("==")
    target = root / f"{name}-{version}"
    if all((target / m).is_file() for m in members):
        return True
    wheel_dir = root / "wheels"
    wheel_dir.mkdir(parents=True, exist_ok=True)
    wheels = list(wheel_dir.glob(f"{name}-{version}-*.whl"))
    if not wheels:
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary",
            ":all:",
            "-d",
            str(wheel_dir),
            requirement,
        ]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            print(f"could not download {requirement}: {result.stderr.strip().splitlines()[-1:]}")
            return False
        wheels = list(wheel_dir.glob(f"{name}-{version}-*.whl"))
    with zipfile.ZipFile(wheels[0]) as zf:
        for member in members:
            out = target / member
            out.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=out.parent)
            with os.fdopen(fd, "wb") as fh:
                fh.write(zf.read(member))
            os.replace(tmp, out)
    print(f"{requirement}: {', '.join(members)} in {target}")
    return True


def main() -> int:
    root = cache_root()
    ok = [fetch(req, members, root) for req, members in WHEELS.items()]
    return 0 if all(ok) else 1


if __name__ == "__main__":
    sys.exit(main())
