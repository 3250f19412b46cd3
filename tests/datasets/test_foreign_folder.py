"""A folder in the documented format that lbp_motion did not write trains as is."""

import csv

import numpy as np
import pytest

from lbp_motion.evaluation.results import read_metrics

pytestmark = pytest.mark.e2e


def write_foreign_folder(root, rng):
    """Written with plain numpy and csv, as another tool would: no format_version key,
    25 fps, another image size, a site column, extra metadata and an extra CSV column."""
    root.mkdir()
    t = np.arange(90) / 25.0
    base = rng.uniform(0.3, 0.7, (17, 2)) * [1920, 1080]
    rows = []
    for i in range(9):
        label = ["low", "medium", "high"][i % 3]
        freq = [2.0, 1.4, 0.8][i % 3]
        kp = np.zeros((len(t), 17, 3), np.float32)
        kp[..., :2] = (
            base
            + 40 * np.sin(2 * np.pi * freq * t)[:, None, None]
            + rng.normal(0, 2, (len(t), 17, 2))
        )
        kp[..., 0] += 300 * t[:, None]  # walking to the right
        kp[..., 2] = rng.uniform(0.5, 1.0, (len(t), 17))
        kp[rng.uniform(size=(len(t), 17)) < 0.05] = 0.0
        np.savez(
            root / f"clinic_{i}.npz",
            keypoints=kp,
            layout=np.asarray("coco17"),
            fps=np.asarray(25.0),
            image_size=np.asarray([1920, 1080]),
            backend=np.asarray("someone-elses-detector"),
        )
        rows.append(
            {
                "recording": f"clinic_{i}",
                "subject": f"p{i}",
                "label": label,
                "site": "A" if i < 5 else "B",
                "notes": "ok",
            }
        )
    with open(root / "labels.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["recording", "subject", "label", "site", "notes"])
        writer.writeheader()
        writer.writerows(rows)
    return root


def test_quickstart_trains_on_a_foreign_folder(tmp_path, run_lbp):
    root = write_foreign_folder(tmp_path / "foreign", np.random.default_rng(3))
    run = run_lbp(
        "fit", "--config", "experiments/quickstart.yaml", "--data.root", str(root), tiny="run"
    )
    metrics = read_metrics(run)
    assert "test/f1_macro" in metrics and "val/mcc" in metrics
    assert (run / "checkpoints").is_dir()
