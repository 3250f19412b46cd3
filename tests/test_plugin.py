"""A task from another installed package is found through the `lbp_motion.tasks`
entry points and runs through `lbp fit`, without touching lbp_motion."""

import base64
import hashlib
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

PLUGIN_MODULE = textwrap.dedent(
    '''
    """A tiny third-party task: a linear probe on frame-averaged features."""
    import torch
    from torch import nn

    from lbp_motion.tasks import ClassificationTask


    class MeanLinear(nn.Module):
        def __init__(self, in_features, num_classes):
            super().__init__()
            self.feature_dim = in_features
            self.head = nn.Linear(in_features, num_classes)

        def forward(self, x, mask=None):
            return self.head(x.mean(dim=1))


    class LinearProbeTask(ClassificationTask):
        """Linear probe over frame-averaged keypoints (plugin demo)."""

        def configure_models(self):
            self.model = MeanLinear(int(self.spec_value("num_features")), len(self.classes))
    '''
)

ENTRY_POINTS = "[lbp_motion.tasks]\nlinear_probe = lbp_plugin_demo:LinearProbeTask\n"


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def build_wheel(dest: Path) -> Path:
    """A minimal, valid wheel (PEP 427) built by hand: no build backend, no network."""
    dist = "lbp_plugin_demo-0.1.dist-info"
    files = {
        "lbp_plugin_demo/__init__.py": PLUGIN_MODULE.encode(),
        f"{dist}/METADATA": b"Metadata-Version: 2.1\nName: lbp-plugin-demo\nVersion: 0.1\n",
        f"{dist}/WHEEL": b"Wheel-Version: 1.0\nGenerator: lbp-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        f"{dist}/entry_points.txt": ENTRY_POINTS.encode(),
    }
    record = "\n".join(_record_line(n, d) for n, d in files.items()) + f"\n{dist}/RECORD,,\n"
    wheel = dest / "lbp_plugin_demo-0.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
        zf.writestr(f"{dist}/RECORD", record)
    return wheel


@pytest.mark.slow
def test_installed_plugin_task_runs_through_lbp_fit(tmp_path, tiny_tug):
    site = tmp_path / "site"
    wheel = build_wheel(tmp_path)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-index",
            "--quiet",
            "--target",
            str(site),
            str(wheel),
        ],
        check=True,
    )
    env = {**os.environ, "PYTHONPATH": str(site), "WANDB_MODE": "disabled"}
    lbp = str(Path(sys.executable).with_name("lbp"))

    listed = subprocess.run(
        [lbp, "tasks"], env=env, capture_output=True, text=True, check=True
    ).stdout
    assert any(
        line.split()[:2] == ["linear_probe", "lbp_plugin_demo.LinearProbeTask"]
        for line in listed.splitlines()
    )

    config = tmp_path / "plugin.yaml"
    config.write_text(
        textwrap.dedent(
            f"""
            trainer: {{max_epochs: 2, enable_progress_bar: false, accelerator: cpu}}
            model:
              class_path: LinearProbeTask      # found by class name through the entry point
              init_args: {{lr: 0.01}}
            data:
              class_path: lbp_motion.datamodules.tug.TUGDataModule
              init_args: {{root: {tiny_tug}, stride: 15}}
            run: {{out_dir: {tmp_path / "runs"}, wandb: disabled}}
            """
        )
    )
    done = subprocess.run(
        [lbp, "fit", "--config", str(config)], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    run = tmp_path / "runs" / "plugin" / "version_0"
    import json

    metrics = json.loads((run / "metrics.json").read_text())
    assert "test/f1_macro" in metrics
    assert "lbp_plugin_demo.LinearProbeTask" in (run / "config.yaml").read_text()
