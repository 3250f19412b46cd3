"""The installed package's version (lowest layer: imports nothing of lbp_motion)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("lbp-motion")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"
