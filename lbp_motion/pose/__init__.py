"""Video -> keypoints: importers of keypoints made elsewhere (more to come: backends,
the extraction runner; see issue 3)."""

from .importers import read_keraal_json

__all__ = ["read_keraal_json"]
