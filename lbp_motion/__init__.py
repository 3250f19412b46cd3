"""lbp_motion: stratify lower-back pain from human motion, federated across clinics."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("lbp-motion")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
