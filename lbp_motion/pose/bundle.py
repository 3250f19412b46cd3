"""An offline MediaPipe pose-landmarker model bundle, built from the package registry.

MediaPipe >= 0.10.30 ships no models, and its Tasks API ``PoseLandmarker`` needs a
``.task`` bundle that is normally downloaded from Google's model host. Hospital networks
often reach only a package mirror; there, the mediapipe 0.10.21 wheel (fetched with
``pip download --no-deps``, never installed) still holds the BlazePose models:
``mediapipe/modules/pose_detection/pose_detection.tflite`` and
``mediapipe/modules/pose_landmark/pose_landmark_full.tflite``. This module adds the
TFLite input-normalisation metadata the Tasks API needs (with mediapipe's own
``MetadataWriter``: detector mean 127.5 / std 127.5 and 2 outputs; landmark model mean 0
/ std 255 and 5 outputs) and zips the two, uncompressed, as ``pose_detector.tflite`` and
``pose_landmarks_detector.tflite``: a ``.task`` bundle the current landmarker loads.

Frames handed to the landmarker must be C-contiguous RGB arrays: PyAV's
``frame.to_ndarray(format="rgb24")`` can return a row-padded view, which the landmarker
reads as garbage (no person found); pass ``np.ascontiguousarray(...)``.
"""

from __future__ import annotations

import importlib
import os
import sys
import tempfile
import types
import zipfile
from pathlib import Path

DETECTOR_MEMBER = "mediapipe/modules/pose_detection/pose_detection.tflite"
LANDMARKS_MEMBER = "mediapipe/modules/pose_landmark/pose_landmark_full.tflite"
_VERSION_MODULE = "mediapipe.tasks.cc.metadata.python._pywrap_metadata_version"


def _ensure_metadata_version_module() -> None:
    """mediapipe 1.2.2's metadata writer imports a compiled module its wheel lacks; a
    stand-in returning "1.0.0" (what 0.10.21's own writer reports) makes it work."""
    try:
        importlib.import_module(_VERSION_MODULE)
        return
    except ImportError:
        pass
    parts = _VERSION_MODULE.split(".")
    for i in range(3, len(parts)):  # mediapipe.tasks.cc, ... .metadata.python
        name = ".".join(parts[:i])
        if name not in sys.modules:
            module = types.ModuleType(name)
            module.__path__ = []  # a package
            sys.modules[name] = module
    stub = types.ModuleType(_VERSION_MODULE)
    stub.GetMinimumMetadataParserVersion = lambda *args, **kwargs: "1.0.0"
    sys.modules[_VERSION_MODULE] = stub
    setattr(sys.modules[".".join(parts[:-1])], parts[-1], stub)


def _with_metadata(model: bytes, mean: float, std: float, outputs: int, name: str) -> bytes:
    _ensure_metadata_version_module()
    from mediapipe.tasks.python.metadata.metadata_writers import metadata_writer

    writer = metadata_writer.MetadataWriter.create(bytearray(model)).add_general_info(name)
    writer.add_image_input(norm_mean=[mean], norm_std=[std])
    for _ in range(outputs):
        writer.add_feature_output()
    content, _ = writer.populate()
    del writer  # its __del__ cleans a temporary folder: run it now, not at interpreter exit
    return bytes(content)


def build_pose_landmarker_bundle(detector: bytes, landmarks: bytes, out: str | Path) -> Path:
    """Write a PoseLandmarker ``.task`` bundle from the two raw BlazePose ``.tflite``
    models (bytes); atomic: a reader never sees half a file."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    members = {
        "pose_detector.tflite": _with_metadata(detector, 127.5, 127.5, 2, "pose_detector"),
        "pose_landmarks_detector.tflite": _with_metadata(landmarks, 0.0, 255.0, 5, "pose_landmarks_detector"),
    }
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
            for name, data in members.items():
                zf.writestr(name, data)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out


def bundle_from_wheel(wheel: str | Path, out: str | Path) -> Path:
    """Build the bundle from a mediapipe <= 0.10.21 wheel file (read, never installed)."""
    with zipfile.ZipFile(wheel) as zf:
        return build_pose_landmarker_bundle(zf.read(DETECTOR_MEMBER), zf.read(LANDMARKS_MEMBER), out)
