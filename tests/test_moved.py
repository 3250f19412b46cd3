"""The module names of 0.1 still import (with a DeprecationWarning naming the new one),
so configs and checkpoints that name them keep loading."""

import importlib
import subprocess
import sys

import pytest


@pytest.mark.e2e
def test_an_old_module_name_warns_and_is_the_new_module():
    code = (
        "import warnings, lbp_motion\n"
        "with warnings.catch_warnings(record=True) as w:\n"
        "    warnings.simplefilter('always')\n"
        "    import lbp_motion.data.tug as old\n"
        "import lbp_motion.datamodules.tug as new\n"
        "assert old is new, old\n"
        "msgs = [str(x.message) for x in w if x.category is DeprecationWarning]\n"
        "assert any('lbp_motion.data.tug moved to lbp_motion.datamodules.tug' in m for m in msgs), msgs\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_old_package_and_split_module_names_resolve_to_the_defining_modules():
    from lbp_motion.datamodules.emopain import EmoPainDataModule
    from lbp_motion.datamodules.tug import TUGDataModule
    from lbp_motion.datasets.emopain.format import read_emopain
    from lbp_motion.datasets.format import read_recording

    data = importlib.import_module("lbp_motion.data")
    assert data.TUGDataModule is TUGDataModule and data.read_recording is read_recording
    emopain = importlib.import_module("lbp_motion.data.emopain")
    assert emopain.EmoPainDataModule is EmoPainDataModule and emopain.read_emopain is read_emopain
    with pytest.raises(AttributeError):
        data.NoSuchName  # noqa: B018
    assert (
        importlib.import_module("lbp_motion.cv").run_cv
        is importlib.import_module("lbp_motion.pipelines.cv").run_cv
    )
