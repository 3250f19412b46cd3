"""End-to-end runs of the `lbp` command, in-process, on the tiny synthetic folder."""

import csv
import json
import re
import subprocess
import sys

import pytest
import yaml

from lbp_motion.cli import main
from lbp_motion.evaluation.results import read_metrics
from lbp_motion.trust import load_checkpoint
from tests.conftest import ROOT

ATTENTION_SMALL = "experiments/tug/attention_small.yaml"
CLASSES = ("low", "medium", "high")


@pytest.fixture(scope="module")
def fitted(tiny_tug, tmp_path_factory):
    """One tiny `lbp fit` (with its final test) shared by the tests of this module."""
    from tests.conftest import TINY_ARGS

    out = tmp_path_factory.mktemp("runs")
    assert (
        main(
            [
                "fit",
                "--config",
                ATTENTION_SMALL,
                "--data.root",
                str(tiny_tug),
                *TINY_ARGS,
                "--run.out_dir",
                str(out),
            ]
        )
        == 0
    )
    return next(out.glob("attention_small/version_0"))


@pytest.mark.e2e
def test_fit_writes_metrics_json_with_the_documented_schema(fitted):
    m = read_metrics(fitted)
    for stage in ("val", "test"):
        for key in (
            "accuracy",
            "precision_weighted",
            "recall_weighted",
            "f1_weighted",
            "f1_macro",
            "mcc",
            "recording_accuracy",
            "recording_f1_macro",
            "recording_mcc",
        ):
            assert 0 <= abs(m[f"{stage}/{key}"]) <= 1, f"{stage}/{key}"
        for cls in CLASSES:
            assert f"{stage}/f1/{cls}" in m
    assert m["monitor"] == "val/f1_macro"
    # the val metrics are those of the best checkpoint, which the final test used
    assert m["best_checkpoint"].endswith(".ckpt") and m["best_checkpoint"].startswith(
        str(fitted.resolve())
    )
    history = list(csv.DictReader(open(fitted / "metrics.csv")))
    best_val = [float(r["val/f1_macro"]) for r in history if r.get("val/f1_macro")]
    assert m["val/f1_macro"] == pytest.approx(max(best_val))
    assert (fitted / "confusion_test.png").stat().st_size > 0
    # last.ckpt is the last epoch (for resuming), whichever epoch was best

    assert load_checkpoint(fitted / "checkpoints" / "last.ckpt")["epoch"] == 1
    conf = list(csv.reader(open(fitted / "confusion_test.csv")))
    assert conf[0][1:] == list(CLASSES)
    # weighted recall equals accuracy (SPEC's table has the same property)
    assert m["test/recall_weighted"] == pytest.approx(m["test/accuracy"], abs=1e-6)


@pytest.mark.e2e
def test_same_config_same_metrics(fitted, run_lbp, tiny_tug):
    again = run_lbp("fit", "--config", ATTENTION_SMALL, "--data.root", str(tiny_tug))
    a, b = read_metrics(fitted), read_metrics(again)
    metric_keys = [k for k in a if "/" in k]
    assert metric_keys and {k: a[k] for k in metric_keys} == {k: b[k] for k in metric_keys}


@pytest.mark.e2e
def test_test_after_fit_can_be_turned_off(run_lbp, tiny_tug):
    run = run_lbp(
        "fit",
        "--config",
        ATTENTION_SMALL,
        "--data.root",
        str(tiny_tug),
        "--test_after_fit",
        "false",
        "--trainer.max_epochs",
        "1",
    )
    m = read_metrics(run)
    assert "val/f1_macro" in m and not any(k.startswith("test/") for k in m)


@pytest.mark.e2e
def test_test_and_predict_from_the_checkpoint_alone(fitted, run_lbp, tmp_path):
    ckpt = read_metrics(fitted)["best_checkpoint"]
    # no --config: model and data settings come from the checkpoint
    tested = run_lbp("test", "--ckpt_path", ckpt, "--run.wandb", "disabled", tiny=False)
    assert read_metrics(tested)["test/accuracy"] == pytest.approx(
        read_metrics(fitted)["test/accuracy"]
    )
    pred = run_lbp(
        "predict",
        "--ckpt_path",
        ckpt,
        "--data.predict_split",
        "all",
        "--run.wandb",
        "disabled",
        tiny=False,
    )
    windows = list(csv.DictReader(open(pred / "predictions.csv")))
    recordings = list(csv.DictReader(open(pred / "recording_predictions.csv")))
    assert len(recordings) == 9 and {r["predicted"] for r in recordings} <= set(CLASSES)
    assert sum(int(r["windows"]) for r in recordings) == len(windows)
    probs = [float(recordings[0][f"p_{c}"]) for c in CLASSES]
    assert sum(probs) == pytest.approx(1.0, abs=1e-4)


@pytest.mark.e2e
def test_print_config_and_short_data_root(tiny_tug, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["fit", "--config", ATTENTION_SMALL, "--data.root", str(tiny_tug), "--print_config"])
    assert exit_.value.code == 0
    config = yaml.safe_load(capsys.readouterr().out)
    assert config["data"]["init_args"]["root"] == str(tiny_tug)
    written = yaml.safe_load(open(ATTENTION_SMALL))  # the file's values, resolved as written
    assert (
        config["model"]["init_args"]["model"]["init_args"]["num_layers"]
        == written["model"]["init_args"]["model"]["init_args"]["num_layers"]
    )
    assert config["data"]["init_args"]["augment"] == written["data"]["init_args"]["augment"]
    assert config["run"]["monitor"] == "val/f1_macro" and config["test_after_fit"] is True


@pytest.mark.e2e
def test_lbp_tasks_lists_the_builtin_task(capsys):
    assert main(["tasks"]) == 0
    out = capsys.readouterr().out  # names padded to the longest
    assert re.search(
        r"^classification +lbp_motion\.tasks\.classification\.ClassificationTask ", out, re.M
    )


@pytest.mark.e2e
def test_wandb_offline_run_is_written(run_lbp, tiny_tug, tmp_path):
    import wandb

    # a W&B run left open in this process (an earlier in-process run, a notebook) must not
    # swallow this run's logs: Lightning's WandbLogger would reuse it
    stale = wandb.init(mode="offline", dir=str(tmp_path), project="stale")
    run = run_lbp(
        "fit",
        "--config",
        ATTENTION_SMALL,
        "--data.root",
        str(tiny_tug),
        "--trainer.max_epochs",
        "1",
        "--run.wandb",
        "offline",
    )
    assert wandb.run is None and stale.id not in str(list((run / "wandb").glob("*")))
    offline = list((run / "wandb").glob("offline-run-*"))
    assert offline, "expected an offline W&B run to sync later"
    assert list(offline[0].glob("*.wandb"))
    # the test confusion matrix went to W&B as an image
    assert list(offline[0].glob("files/media/images/test/confusion_matrix_*.png"))


@pytest.mark.e2e
def test_console_script_is_installed():
    out = subprocess.run(
        [sys.executable.replace("python", "lbp"), "tasks"], capture_output=True, text=True
    )
    assert out.returncode == 0 and "classification" in out.stdout


@pytest.mark.e2e
def test_metrics_json_is_valid_json_without_nan(fitted):
    text = (fitted / "metrics.json").read_text()
    assert "NaN" not in text
    json.loads(text)


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("override", "message"),
    [
        (["--data.window", "0"], "data: window=0 and stride=5 must be positive"),
        (
            ["--data.test_fraction", "0.9"],
            "data: val_fraction=0.2 and test_fraction=0.9 must be >= 0 and sum below 1",
        ),
        (["--data.layout", "ntu99"], "data: layout: unknown joint layout 'ntu99'"),
        (["--data.root", "/nowhere/at/all"], "/nowhere/at/all: data folder not found"),
    ],
)
def test_bad_settings_give_one_line_and_leave_no_run_dir(override, message, tmp_path, capsys):
    code = main(
        [
            "fit",
            "--config",
            ATTENTION_SMALL,
            *override,
            "--run.out_dir",
            str(tmp_path),
            "--run.wandb",
            "disabled",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and f"lbp: error: {message}" in err and "Traceback" not in err
    assert not list(tmp_path.glob("*/version_*"))


@pytest.mark.e2e
def test_usage_lists_every_registered_command_with_its_help(capsys):
    from lbp_motion.cli.commands import COMMANDS

    assert main(["--help"]) == 0
    lines = capsys.readouterr().out.splitlines()
    for command in COMMANDS.values():
        assert any(line.split() == [command.name, *command.help.split()] for line in lines), (
            command.name
        )
    assert {"fit", "predict", "predict-file", "tasks", "federate"} <= set(COMMANDS)


@pytest.mark.e2e
def test_help_imports_no_command_module_nor_torch():
    code = (
        "import sys; from lbp_motion.cli import main; main(['--help']); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'lightning', 'flwr', 'mediapipe') "
        "or m in ('lbp_motion.runs', 'lbp_motion.pipelines.cv', 'lbp_motion.cli.pose')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_every_registered_command_resolves_to_a_function():
    from lbp_motion.cli import _implementation
    from lbp_motion.cli.commands import COMMANDS

    for command in COMMANDS.values():
        assert callable(_implementation(command)), command.target


def test_the_docs_table_lists_every_registered_command():
    from lbp_motion.cli.commands import COMMANDS

    text = (ROOT / "docs" / "cli.md").read_text()
    missing = [c.name for c in COMMANDS.values() if f"| `lbp {c.name}` | {c.help} |" not in text]
    assert missing == [], "docs/cli.md's table of commands lacks these (or has an old help line)"


@pytest.mark.e2e
def test_an_unknown_command_is_named_in_one_line(capsys):
    assert main(["reprot", "runs/x"]) == 2
    err = capsys.readouterr().err.strip()
    assert (
        err.startswith("lbp: error: unknown command 'reprot'")
        and "report" in err
        and "\n" not in err
    )


@pytest.mark.e2e
def test_help_of_a_command_names_the_new_spelling_and_the_old_one_beside_it(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["report", "--help"])
    assert exit_.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "--out_dir DIR" in out and "(formerly --out)" in out and "--out OUT" not in out
