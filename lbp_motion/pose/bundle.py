"""The offline MediaPipe pose-landmarker bundle, built from files on the package registry.

MediaPipe's Tasks API ``PoseLandmarker`` needs a ``.task`` model bundle that
mediapipe >= 0.10.30 no longer ships; the official one is downloaded from Google's
storage, which hospital networks often cannot reach. The ``mediapipe==0.10.21`` wheel
on PyPI still holds the two BlazePose networks as plain ``.tflite`` files. This
module turns them into a bundle the current ``PoseLandmarker`` loads:

1. take ``mediapipe/modules/pose_detection/pose_detection.tflite`` and
   ``mediapipe/modules/pose_landmark/pose_landmark_full.tflite`` from the wheel
   (downloaded with ``pip download --no-deps``, never installed; or already unpacked
   into ``$LBP_CACHE/registry`` by ``scripts/fetch_test_data.py``);
2. add TFLite metadata describing the input normalisation with mediapipe's own
   ``MetadataWriter``: detector ``(x - 127.5) / 127.5`` with 2 outputs, landmark model
   ``x / 255`` with 5 outputs. mediapipe 1.2.2's writer imports a compiled module its
   wheel lacks (``_pywrap_metadata_version``); a stand-in returning the minimum parser
   version "1.0.0" (what 0.10.21's compiled writer reports) takes its place;
3. zip both, uncompressed, as ``pose_detector.tflite`` and
   ``pose_landmarks_detector.tflite``: the layout of the official bundle.

Frames handed to the landmarker must be C-contiguous RGB arrays: PyAV's
``frame.to_ndarray(format="rgb24")`` can return a row-padded view, which the landmarker
reads as garbage (no person found); the backend passes ``np.ascontiguousarray(...)``.

The cache root is ``$LBP_CACHE``, else ``~/.cache/lbp_motion``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import types
import zipfile
from pathlib import Path

from lbp_motion.atomic import atomic_write
from lbp_motion.pose.base import BackendUnavailable

MEDIAPIPE_WHEEL = "mediapipe==0.10.21"
DETECTOR_MEMBER = "mediapipe/modules/pose_detection/pose_detection.tflite"
LANDMARKS_MEMBER = "mediapipe/modules/pose_landmark/pose_landmark_full.tflite"
#: (member, normalisation mean, std, number of outputs, name inside the bundle)
MODELS = (
    (DETECTOR_MEMBER, 127.5, 127.5, 2, "pose_detector.tflite"),
    (LANDMARKS_MEMBER, 0.0, 255.0, 5, "pose_landmarks_detector.tflite"),
)
BUNDLE_NAME = "pose_landmarker_offline.task"
#: The platform whose wheel is fetched: the .tflite files are the same in every wheel,
#: so one fixed platform works from any machine and Python version.
WHEEL_PLATFORM = ("--platform", "manylinux_2_28_x86_64", "--python-version", "3.11")


def cache_root() -> Path:
    """``$LBP_CACHE``, else ``~/.cache/lbp_motion``."""
    base = os.environ.get("LBP_CACHE")
    return Path(base) if base else Path.home() / ".cache" / "lbp_motion"


def registry_dir() -> Path:
    """Where files fetched from the package registry live (as in scripts/fetch_test_data.py)."""
    return cache_root() / "registry"


def _wheel_path(registry: Path, download: bool) -> Path | None:
    name, version = MEDIAPIPE_WHEEL.split("==")
    wheel_dir = registry / "wheels"
    wheels = sorted(wheel_dir.glob(f"{name}-{version}-*.whl"))
    if wheels or not download:
        return wheels[0] if wheels else None
    wheel_dir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
           *WHEEL_PLATFORM, "-d", str(wheel_dir), MEDIAPIPE_WHEEL]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["pip failed"])[-1]
        raise BackendUnavailable(
            f"could not download {MEDIAPIPE_WHEEL} from the package registry: {last}"
        )
    wheels = sorted(wheel_dir.glob(f"{name}-{version}-*.whl"))
    return wheels[0] if wheels else None


def source_models(registry: str | Path | None = None, *, download: bool = True) -> dict[str, bytes]:
    """The two ``.tflite`` files of the mediapipe 0.10.21 wheel, by member name.

    Looked up as unpacked files under ``<registry>/mediapipe-0.10.21/``, then in the
    wheel under ``<registry>/wheels/``, else (``download``) the wheel is fetched with
    ``pip download`` into ``<registry>/wheels/``.
    """
    registry = Path(registry) if registry is not None else registry_dir()
    unpacked = registry / MEDIAPIPE_WHEEL.replace("==", "-")
    if all((unpacked / m).is_file() for m, *_ in MODELS):
        return {m: (unpacked / m).read_bytes() for m, *_ in MODELS}
    wheel = _wheel_path(registry, download)
    if wheel is None:
        raise BackendUnavailable(
            f"the {MEDIAPIPE_WHEEL} wheel is not in {registry / 'wheels'}; run `make test-data` "
            f"or `pip download --no-deps --only-binary :all: -d {registry / 'wheels'} {MEDIAPIPE_WHEEL}`"
        )
    with zipfile.ZipFile(wheel) as zf:
        return {m: zf.read(m) for m, *_ in MODELS}


def _metadata_writer():
    """mediapipe's ``MetadataWriter``, with the stand-in for the compiled module that
    mediapipe >= 0.10.30 wheels lack (only installed where that import fails)."""
    try:
        from mediapipe.tasks.cc.metadata.python import _pywrap_metadata_version  # noqa: F401
    except ImportError:
        package = "mediapipe.tasks.cc.metadata.python"
        parts = package.split(".")
        for i in range(3, len(parts) + 1):  # mediapipe.tasks.cc, ...cc.metadata, ...python
            name = ".".join(parts[:i])
            if name not in sys.modules:
                module = types.ModuleType(name)
                module.__path__ = []  # a package
                sys.modules[name] = module
        stand_in = types.ModuleType(f"{package}._pywrap_metadata_version")
        # what mediapipe 0.10.21's compiled writer returns for this metadata
        stand_in.GetMinimumMetadataParserVersion = lambda metadata_buf: "1.0.0"
        sys.modules[stand_in.__name__] = stand_in
        sys.modules[package]._pywrap_metadata_version = stand_in  # type: ignore[attr-defined]
    try:
        from mediapipe.tasks.python.metadata.metadata_writers import metadata_writer
    except ImportError as err:
        raise BackendUnavailable(
            f"mediapipe's metadata writer cannot be imported ({err}); install the pose extra: "
            "pip install 'lbp-motion[pose]'"
        ) from None
    return metadata_writer.MetadataWriter


def add_input_metadata(
    model: bytes, *, mean: float, std: float, num_outputs: int, name: str = ""
) -> bytes:
    """``model`` (.tflite) with metadata saying its RGB input is ``(x - mean) / std``."""
    writer = _metadata_writer().create(bytearray(model))
    if name:
        writer.add_general_info(name)
    writer.add_image_input(norm_mean=[mean], norm_std=[std])
    for _ in range(num_outputs):
        writer.add_feature_output()
    populated, _json = writer.populate()
    del writer  # its __del__ removes a temporary folder: now, not at interpreter exit
    return bytes(populated)


def build_pose_landmarker_bundle(detector: bytes, landmarks: bytes, out: str | Path) -> Path:
    """Write a PoseLandmarker ``.task`` bundle from the two raw BlazePose ``.tflite``
    models (bytes); atomic: a reader never sees half a file."""
    out = Path(out)
    sources = {DETECTOR_MEMBER: detector, LANDMARKS_MEMBER: landmarks}
    members = {}
    for member, mean, std, outputs, name in MODELS:
        members[name] = add_input_metadata(
            sources[member],
            mean=mean,
            std=std,
            num_outputs=outputs,
            name=name.removesuffix(".tflite"),
        )

    def write(tmp: Path) -> None:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
            for name, data in members.items():
                zf.writestr(name, data)

    return atomic_write(out, write)


def bundle_from_wheel(wheel: str | Path, out: str | Path) -> Path:
    """Build the bundle from a mediapipe <= 0.10.21 wheel file (read, never installed)."""
    with zipfile.ZipFile(wheel) as zf:
        return build_pose_landmarker_bundle(
            zf.read(DETECTOR_MEMBER), zf.read(LANDMARKS_MEMBER), out
        )


def build_offline_bundle(
    out: str | Path | None = None, *, registry: str | Path | None = None, download: bool = True
) -> Path:
    """Build the pose-landmarker ``.task`` bundle from the mediapipe 0.10.21 wheel's
    models (:func:`source_models`: unpacked files, the wheel, or ``pip download``) and
    write it atomically to ``out`` (default ``<cache>/models/`` + :data:`BUNDLE_NAME`)."""
    out = Path(out) if out is not None else cache_root() / "models" / BUNDLE_NAME
    sources = source_models(registry, download=download)
    return build_pose_landmarker_bundle(sources[DETECTOR_MEMBER], sources[LANDMARKS_MEMBER], out)


def is_pose_bundle(path: str | Path) -> bool:
    """Whether ``path`` is a zip holding the two networks a ``PoseLandmarker`` needs."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
    except (OSError, zipfile.BadZipFile):
        return False
    return {"pose_detector.tflite", "pose_landmarks_detector.tflite"} <= names
