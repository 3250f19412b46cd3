"""Fixtures of the data tests."""

import shutil

import pytest


@pytest.fixture
def tiny_copy(tiny_tug, tmp_path):
    """A writable copy of the tiny synthetic TUG folder, for tests that edit it."""
    dst = tmp_path / "data"
    shutil.copytree(tiny_tug, dst)
    return dst
