"""Sweep files (W&B format), their sampling, and `lbp sweep`: a 4-run grid, resume."""

import csv
import json
import sys
import time
from pathlib import Path

import pytest
import yaml

from lbp_motion.cli import main
from lbp_motion.errors import ConfigError
from lbp_motion.pipelines.sweep import (
    command_for,
    grid_points,
    load_sweep,
    parse_sweep,
    run_parameters,
    run_sweep,
    total_runs,
)
from lbp_motion.pipelines.sweep_results import ranked_runs
from tests.conftest import ROOT, TINY_ARGS, TINY_RUN_ARGS

SWEEPS = sorted((ROOT / "experiments" / "sweeps").glob("*.yaml"))


def agent_flags(params: dict) -> list[str]:
    """The `${args}` of a run exactly as the W&B agent builds them."""
    from wandb.sdk.launch.sweeps.utils import create_sweep_command_args

    return create_sweep_command_args({"args": {k: {"value": v} for k, v in params.items()}})["args"]


def _get(config: dict, dotted: str):
    node = config
    for part in dotted.split("."):
        node = node[part]
    return node


def test_there_are_grid_random_and_bayes_sweeps_and_a_segment_length_ablation():
    specs = {p.stem: load_sweep(p) for p in SWEEPS}
    assert {s.method for s in specs.values()} == {"grid", "random", "bayes"}
    ablation = specs["emopain_segment_length"]
    assert [p["data.init_args.segment_length"] for p in grid_points(ablation)] == list(
        range(100, 1001, 100)
    )


@pytest.mark.e2e
@pytest.mark.parametrize("sweep", SWEEPS, ids=lambda p: p.stem)
def test_sweep_file_parses_and_lbp_accepts_the_agents_arguments(sweep, capsys):
    raw = yaml.safe_load(sweep.read_text())
    spec = load_sweep(sweep)
    # W&B's own keys are there, and the command runs `lbp fit --config BASE ${args}`
    assert (
        raw["program"]
        and raw["metric"]["name"]
        and raw["metric"]["goal"] in ("maximize", "minimize")
    )
    assert raw["command"][:3] == ["${env}", "lbp", "fit"] and raw["command"][-1] == "${args}"
    assert (ROOT / spec.lbp_args[2]).is_file()
    # the last grid point, or the engine's first proposal
    params = grid_points(spec)[-1] if spec.method == "grid" else run_parameters(spec, 0)
    command = [t for t in spec.lbp_args if t != "${args}"]
    with pytest.raises(SystemExit) as exit_:
        main([*command, *agent_flags(params), "--print_config"])
    assert exit_.value.code == 0
    parsed = yaml.safe_load(capsys.readouterr().out)
    for key, value in params.items():
        assert _get(parsed, key) == pytest.approx(value), key
    assert parsed["run"]["wandb"] == "online"  # an agent's runs reach the W&B server


def test_grid_enumerates_every_combination():
    spec = parse_sweep(
        {
            "method": "grid",
            "command": ["${env}", "lbp", "fit", "--config", "x.yaml", "${args}"],
            "parameters": {
                "a": {"values": [1, 2]},
                "b": {"distribution": "int_uniform", "min": 0, "max": 2},
                "c": {"value": "z"},
            },
        }
    )
    combos = grid_points(spec)
    assert len(combos) == 6 and len({tuple(c.values()) for c in combos}) == 6
    assert combos[0] == {"a": 1, "b": 0, "c": "z"} and combos[-1] == {"a": 2, "b": 2, "c": "z"}
    assert command_for(spec, combos[1]) == ["fit", "--config", "x.yaml", "--a=1", "--b=1", "--c=z"]
    assert command_for(spec, combos[1], ["--x", "1"])[3:5] == [
        "--x",
        "1",
    ]  # extras before the parameters


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"method": "hyperband", "parameters": {"a": {"value": 1}}}, "method 'hyperband'"),
        (
            {
                "method": "grid",
                "parameters": {"a": {"distribution": "uniform", "min": 0, "max": 1}},
                "command": ["lbp", "fit", "${args}"],
            },
            "disallowed type with grid search",
        ),
        (
            {"method": "random", "parameters": {"a": {"values": []}}},
            r"parameters.a \{'values': \[\]\}: not a W&B parameter",
        ),
        (
            {"method": "random", "parameters": {"a": {"min": 3, "max": 1}}},
            "parameters.a .*min 3 is not less than max 1",
        ),
        (
            {"method": "bayes", "parameters": {"a": {"values": [1, 2]}}},
            "method bayes needs metric.name",
        ),
        (
            {
                "method": "random",
                "parameters": {"a": {"values": [1, 2]}},
                "metric": {"name": "m"},
                "early_terminate": {"type": "hyperband"},
            },
            "early_terminate .*min_iter",
        ),
        (
            {"method": "random", "parameters": {"a": {"parameters": {"b": {"value": 1}}}}},
            "nested parameters",
        ),
        (
            {
                "method": "random",
                "parameters": {"a": {"value": 1}},
                "command": ["python", "train.py", "${args}"],
            },
            "does not run lbp",
        ),
        (
            {
                "method": "random",
                "parameters": {"a": {"value": 1}},
                "command": ["lbp", "fit", "${args_no_hyphens}"],
            },
            "cannot pass options to lbp",
        ),
        (
            {
                "method": "random",
                "parameters": {"a": {"value": 1}},
                "metric": {"name": "m", "goal": "up"},
            },
            "metric.goal 'up'",
        ),
    ],
)
def test_bad_sweep_files_name_the_field(raw, message):
    raw.setdefault("command", ["${env}", "lbp", "fit", "${args}"])
    with pytest.raises(ConfigError, match=message):
        parse_sweep(raw)


def test_command_forms(monkeypatch):
    monkeypatch.setenv("BASE_CONFIG", "experiments/tug/attention_small.yaml")
    base = {"method": "random", "parameters": {"a": {"value": 1}}}
    with pytest.raises(
        ConfigError, match="subcommand"
    ):  # W&B's default command has no room for `fit`
        parse_sweep({**base, "program": "lbp"})
    program = parse_sweep(
        {**base, "program": "/venv/bin/lbp", "command": ["${program}", "fit", "${args}"]}
    )
    assert command_for(program, {"a": 1}) == ["fit", "--a=1"]
    module = parse_sweep(
        {
            **base,
            "command": [
                "${env}",
                "${interpreter}",
                "-m",
                "lbp_motion.cli",
                "fit",
                "--config",
                "${envvar:BASE_CONFIG}",
                "${args_no_equals}",
            ],
        }
    )
    assert command_for(module, {"a": 1}) == [
        "fit",
        "--config",
        "experiments/tug/attention_small.yaml",
        "--a",
        "1",
    ]
    # a sweep over config files: the swept config goes before the runner's options, which it would reset
    over_configs = parse_sweep(
        {
            "method": "grid",
            "parameters": {"x": {"value": 1}, "config": {"values": ["a.yaml"]}},
            "command": ["${env}", "lbp", "fit", "${args}"],
        }
    )
    assert command_for(over_configs, {"x": 1, "config": "a.yaml"}, ["--data.root", "D"]) == [
        "fit",
        "--config=a.yaml",
        "--data.root",
        "D",
        "--x=1",
    ]


@pytest.mark.e2e
def test_lbp_sweep_prints_one_line_errors(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "method: grid\nparameters: {a: {values: [1]}}\ncommand: [python, train.py, '${args}']\n"
    )
    assert main(["sweep", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert (
        err.startswith("lbp: error: sweep file") and "does not run lbp" in err and "\n" not in err
    )
    bad.write_text("method: grid\ncommand: [lbp, fit, ${args}]\n")  # unquoted ${...} in a flow list
    assert main(["sweep", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert "not valid YAML at line 2" in err and "\n" not in err
    assert main(["sweep", str(tmp_path / "missing.yaml")]) == 2


def test_ranking_follows_the_goal():
    spec = parse_sweep(
        {
            "method": "random",
            "parameters": {"a": {"value": 1}},
            "metric": {"name": "m", "goal": "minimize"},
            "command": ["lbp", "fit", "${args}"],
        }
    )
    runs = [
        {"index": 0, "name": "r0", "metrics": {"m": 0.5}},
        {"index": 1, "name": "r1", "metrics": None},
        {"index": 2, "name": "r2", "metrics": {"m": 0.1}},
    ]
    assert [r["name"] for r in ranked_runs(spec, runs)] == ["r2", "r0", "r1"]
    spec.goal = "maximize"
    assert [r["name"] for r in ranked_runs(spec, runs)] == ["r0", "r2", "r1"]


@pytest.mark.e2e
@pytest.mark.slow
def test_a_4_run_grid_runs_offline_and_resumes(tiny_tug, tmp_path, capsys, monkeypatch):
    import lbp_motion.pipelines.sweep as sweep_module

    sweep = str(ROOT / "experiments" / "sweeps" / "quickstart_grid.yaml")
    tiny = [
        a for a in TINY_RUN_ARGS if a not in ("--run.wandb", "disabled")
    ]  # keep the offline W&B log
    argv = [
        "sweep",
        sweep,
        "--count",
        "4",
        "--out_dir",
        str(tmp_path),
        "--data.root",
        str(tiny_tug),
        *tiny,
        "--trainer.max_epochs",
        "1",
    ]
    real_run, calls = sweep_module.run_arguments, []

    def interrupted(args):  # Ctrl-C while the third run starts
        calls.append(args)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_run(args)

    monkeypatch.setattr(sweep_module, "run_arguments", interrupted)
    with pytest.raises(KeyboardInterrupt):
        main(argv)
    sweep_dir = tmp_path / "quickstart-grid"
    state = json.loads((sweep_dir / "state.json").read_text())
    assert [r["status"] for r in state["runs"]] == ["finished", "finished", "running"]
    first_metrics = (sweep_dir / "run-0" / "version_0" / "metrics.json").stat().st_mtime

    calls.clear()
    capsys.readouterr()
    assert main(argv) == 0  # resume: runs 2 and 3 only
    assert len(calls) == 2 and all("--run.name" in c for c in calls)
    assert [c[c.index("--run.name") + 1] for c in calls] == ["run-2", "run-3"]
    assert (sweep_dir / "run-0" / "version_0" / "metrics.json").stat().st_mtime == first_metrics
    assert not (sweep_dir / "run-0" / "version_1").exists()
    out = capsys.readouterr().out
    assert "Best: run-" in out and "val/f1_macro" in out

    state = json.loads((sweep_dir / "state.json").read_text())
    runs = state["runs"]
    assert [r["status"] for r in runs] == ["finished"] * 4
    assert len({json.dumps(r["params"], sort_keys=True) for r in runs}) == 4
    for r in runs:
        run_dir = Path(r["run_dir"])
        metrics = json.loads((run_dir / "metrics.json").read_text())
        assert metrics == r["metrics"]
        config = yaml.safe_load((run_dir / "config.yaml").read_text())
        assert config["model"]["init_args"]["lr"] == pytest.approx(
            r["params"]["model.init_args.lr"]
        )
        assert (run_dir / "metrics.csv").is_file()  # CSV log
        offline = list((run_dir / "wandb").glob("offline-run-*"))
        assert len(offline) == 1  # one offline W&B run each, not one shared run

    rows = list(csv.DictReader(open(sweep_dir / "results.csv")))
    values = [float(r["val/f1_macro"]) for r in rows]
    assert values == sorted(values, reverse=True) and [r["rank"] for r in rows] == [
        "1",
        "2",
        "3",
        "4",
    ]
    assert rows[0]["run"] in out.split("Best: ")[1].split()[0]
    md = (sweep_dir / "results.md").read_text()
    assert md.count("| run-") == 4 and "model.init_args.lr" in md

    calls.clear()
    assert main(argv) == 0  # finished: nothing runs again
    assert calls == []

    # `lbp report` over the sweep and its runs: one page, every figure a file that loads
    from tests.pipelines.test_report import browser_probe, find_browser, parse_report

    report_dir = tmp_path / "report"
    assert (
        main(
            ["report", str(sweep_dir), *(r["run_dir"] for r in runs), "--out_dir", str(report_dir)]
        )
        == 0
    )
    page = report_dir / "report.html"
    parsed = parse_report(page)
    assert "Runs compared" in page.read_text() and "Sweep runs, best first" in page.read_text()
    best = max(r["metrics"]["val/f1_macro"] for r in runs)
    assert (f"{best:.4f}", best) in parsed.cells
    assert len(parsed.imgs) == 1 + 4 and all(
        (report_dir / s).is_file() for s in parsed.imgs
    )  # 1 epoch: no curves
    if find_browser() is not None:  # the browser check proper is in test_report.py
        shown = browser_probe(page, tmp_path)
        assert all(i["width"] > 0 for i in shown["imgs"]) and f"{best:.4f}" in shown["text"]


@pytest.mark.e2e
def test_an_interrupted_run_goes_on_from_its_last_checkpoint(tiny_tug, tmp_path, monkeypatch):
    """A run interrupted after its first epoch is resumed from its last.ckpt, not run
    from epoch 0: the epochs done are not repeated and the metric's history (what
    hyperband and Bayesian search read) goes on from the checkpoint's values, and its
    seconds count both attempts."""
    import signal
    import time

    import lbp_motion.pipelines.sweep as sweep_module
    from lbp_motion.interrupts import Interrupted
    from lbp_motion.trust import load_checkpoint

    sweep = str(ROOT / "experiments" / "sweeps" / "quickstart_grid.yaml")
    argv = [
        "sweep",
        sweep,
        "--count",
        "1",
        "--out_dir",
        str(tmp_path),
        "--data.root",
        str(tiny_tug),
        *TINY_RUN_ARGS,
        "--trainer.max_epochs",
        "2",
        "--test_after_fit",
        "false",
    ]
    real_run, calls = sweep_module.run_arguments, []

    def one_epoch_then_interrupt(args):  # the first epoch ends, a wait, then Ctrl-C
        real_run([*args, "--trainer.max_epochs", "1"])
        time.sleep(1.0)
        raise Interrupted(signal.SIGINT)

    monkeypatch.setattr(sweep_module, "run_arguments", one_epoch_then_interrupt)
    assert main(argv) == 128 + signal.SIGINT
    sweep_dir = tmp_path / "quickstart-grid"
    last = sweep_dir / "run-0" / "version_0" / "checkpoints" / "last.ckpt"
    interrupted = json.loads((sweep_dir / "state.json").read_text())["runs"][0]
    assert interrupted["status"] == "interrupted" and interrupted["seconds"] >= 1.0
    before = json.loads((sweep_dir / "history" / "run-0.json").read_text())["values"]
    assert len(before) == 1 and load_checkpoint(last)["epoch"] == 0

    def recorded(args):
        calls.append(args)
        return real_run(args)

    monkeypatch.setattr(sweep_module, "run_arguments", recorded)
    assert main(argv) == 0
    assert len(calls) == 1 and calls[0][-2:] == ["--ckpt_path", str(last)]
    entry = json.loads((sweep_dir / "state.json").read_text())["runs"][0]
    assert entry["status"] == "finished" and entry["resumed_from"] == str(last)
    # the first attempt's seconds (with its wait) plus the resumed epoch's, not the latter alone
    assert entry["seconds_before"] == interrupted["seconds"]
    assert entry["seconds"] > interrupted["seconds"]
    assert Path(entry["run_dir"]) == sweep_dir / "run-0" / "version_1"
    assert len(entry["history"]) == 2 and entry["history"][0] == pytest.approx(before[0])
    resumed = load_checkpoint(Path(entry["run_dir"]) / "checkpoints" / "last.ckpt")
    assert resumed["epoch"] == 1  # one more epoch, not two from the start
    assert load_checkpoint(last)["epoch"] == 0  # the interrupted run's folder as it was


@pytest.mark.e2e
def test_random_and_bayes_runs_failures_and_a_changed_sweep(tmp_path, monkeypatch):
    """The runner's bookkeeping with a stand-in for `lbp fit` (no training)."""
    import lbp_motion.pipelines.sweep as sweep_module
    from lbp_motion.errors import LbpError
    from lbp_motion.evaluation.results import make_run_dir
    from lbp_motion.pipelines.sweep import run_sweep
    from lbp_motion.runs import RunResult

    calls = []

    def fake_fit(argv):  # metric = lr * 100; an lr above 2e-3 "fails"
        calls.append(argv)
        run_dir = make_run_dir(
            argv[argv.index("--run.out_dir") + 1], argv[argv.index("--run.name") + 1]
        )
        lr = float(next(a for a in argv if a.startswith("--model.init_args.lr=")).split("=", 1)[1])
        if lr > 2e-3:
            raise LbpError(f"training loss is nan (lr {lr})")
        (run_dir / "metrics.json").write_text(json.dumps({"val/f1_macro": lr * 100}))
        return RunResult.from_run_dir(run_dir)

    monkeypatch.setattr(sweep_module, "run_arguments", fake_fit)
    notes = []
    sweep = ROOT / "experiments" / "sweeps" / "attention_small_bayes.yaml"
    sweep_dir = run_sweep(sweep, count=6, out_dir=tmp_path, seed=3, log=notes.append)
    assert len(calls) == 6 and all(
        c[0] == "fit" and c[1:3] == ["--config", "experiments/tug/attention_small.yaml"]
        for c in calls
    )
    for c in calls:  # the command's --config, then lbp sweep's options, then the parameters
        first_param = next(i for i, a in enumerate(c) if a.startswith("--model.init_args.lr="))
        assert c.index("--config") < c.index("--run.wandb") < first_param
        assert (
            c[c.index("--run.wandb") + 1] == "offline" and "--run.wandb=online" in c[:first_param]
        )
    state = json.loads((sweep_dir / "state.json").read_text())
    lrs = [r["params"]["model.init_args.lr"] for r in state["runs"]]
    assert all(1e-4 <= lr <= 3e-3 for lr in lrs) and len(set(lrs)) == 6
    failed = [r["name"] for r in state["runs"] if r["status"] == "failed"]
    assert failed and failed == [
        r["name"] for r in state["runs"] if r["params"]["model.init_args.lr"] > 2e-3
    ]
    rows = list(csv.DictReader(open(sweep_dir / "results.csv")))
    finished = [float(r["val/f1_macro"]) for r in rows if r["status"] == "finished"]
    assert finished == sorted(finished, reverse=True) and [
        r["status"] for r in rows[len(finished) :]
    ] == ["failed"] * len(failed)
    # a rerun retries only the failed runs, with the same parameters
    calls.clear()
    run_sweep(sweep, count=6, out_dir=tmp_path, seed=3, log=notes.append)
    assert [c[c.index("--run.name") + 1] for c in calls] == failed
    # the same folder with another seed is refused rather than mixed
    with pytest.raises(ConfigError, match="other parameters, command or seed"):
        run_sweep(sweep, count=6, out_dir=tmp_path, seed=4, log=notes.append)
    # other options on a resume: said, recorded, and passed to the runs from then on
    notes.clear()
    calls.clear()
    run_sweep(
        sweep,
        count=6,
        out_dir=tmp_path,
        seed=3,
        overrides=["--trainer.max_epochs", "1"],
        log=notes.append,
    )
    assert any("started with the options []" in n for n in notes)
    assert calls and all("--trainer.max_epochs" in c for c in calls)
    assert json.loads((sweep_dir / "state.json").read_text())["overrides"] == [
        "--trainer.max_epochs",
        "1",
    ]


def test_plaan_run_lists_are_sweeps_of_their_entries():
    spec = load_sweep(ROOT / "experiments" / "emopain" / "sweeps" / "cascade_comparison.yaml")
    entries = yaml.safe_load(
        (ROOT / "experiments" / "emopain" / "sweeps" / "cascade_comparison.yaml").read_text()
    )["runs"]
    assert (
        total_runs(spec) == len(entries) and spec.metric == "test/mcc" and spec.goal == "maximize"
    )
    for k, entry in enumerate(entries):
        params = run_parameters(spec, k)
        assert command_for(spec, params, ["--data.root", "D"]) == [
            "fit",
            "--config",
            entry["config"],
            "--data.root",
            "D",
            *entry["overrides"],
        ]
    with pytest.raises(ConfigError, match=r"runs\[1\].name 'a'"):
        parse_sweep(
            {
                "kind": "run_list",
                "runs": [{"name": "a", "config": "x.yaml"}, {"name": "a", "config": "y.yaml"}],
            }
        )


@pytest.mark.e2e
@pytest.mark.slow
def test_lbp_sweep_runs_a_run_list_and_resumes(tiny_tug, tmp_path, capsys):
    run_list = tmp_path / "compare.yaml"
    run_list.write_text(
        yaml.safe_dump(
            {
                "kind": "run_list",
                "metric": {"name": "test/accuracy", "goal": "maximize"},
                "runs": [
                    {
                        "name": "slow",
                        "config": "experiments/tug/attention_small.yaml",
                        "overrides": ["--model.init_args.lr", "1e-5"],
                    },
                    {
                        "name": "fast",
                        "config": "experiments/tug/attention_small.yaml",
                        "overrides": ["--model.init_args.lr", "3e-3"],
                    },
                ],
            }
        )
    )
    argv = [
        "sweep",
        str(run_list),
        "--out_dir",
        str(tmp_path / "out"),
        "--data.root",
        str(tiny_tug),
        *TINY_ARGS,
        "--trainer.max_epochs",
        "1",
    ]
    assert main(argv) == 0
    sweep_dir = tmp_path / "out" / "compare"
    state = json.loads((sweep_dir / "state.json").read_text())
    assert [r["name"] for r in state["runs"]] == ["slow", "fast"] and {
        r["status"] for r in state["runs"]
    } == {"finished"}
    for r, lr in zip(state["runs"], (1e-5, 3e-3)):
        config = yaml.safe_load((Path(r["run_dir"]) / "config.yaml").read_text())
        assert Path(r["run_dir"]).parent.name == r["name"] and config["model"]["init_args"][
            "lr"
        ] == pytest.approx(lr)
    rows = list(csv.DictReader(open(sweep_dir / "results.csv")))
    values = [float(r["test/accuracy"]) for r in rows]
    assert values == sorted(values, reverse=True) and {r["config"] for r in rows} == {
        "experiments/tug/attention_small.yaml"
    }
    before = (Path(state["runs"][0]["run_dir"]) / "metrics.json").stat().st_mtime
    assert main(argv) == 0  # finished runs are not run again
    assert (Path(state["runs"][0]["run_dir"]) / "metrics.json").stat().st_mtime == before
    assert "finished before; skipping" in capsys.readouterr().out


def test_a_seeded_run_list_runs_each_entry_per_seed_and_summarises_mean_and_sd(
    tmp_path, monkeypatch
):
    """``seeds``: each entry once per seed ({seed} in its overrides, else
    --seed_everything), and summary.md / summary.json with mean ± sd per entry."""
    import lbp_motion.pipelines.sweep as sweep_module
    from lbp_motion.evaluation.results import make_run_dir
    from lbp_motion.pipelines.sweep import run_sweep
    from lbp_motion.runs import RunResult

    calls = []

    def fake_fit(argv):  # test/mcc = 0.1 * seed, + 0.5 for the second entry
        calls.append(argv)
        run_dir = make_run_dir(
            argv[argv.index("--run.out_dir") + 1], argv[argv.index("--run.name") + 1]
        )
        seed = int(argv[argv.index("--seed_everything") + 1])
        bonus = 0.5 if "fedadam" in argv[argv.index("--run.name") + 1] else 0.0
        (run_dir / "metrics.json").write_text(json.dumps({"test/mcc": 0.1 * seed + bonus}))
        return RunResult.from_run_dir(run_dir)

    monkeypatch.setattr(sweep_module, "run_arguments", fake_fit)
    run_list = tmp_path / "compare.yaml"
    run_list.write_text(
        yaml.safe_dump(
            {
                "kind": "run_list",
                "seeds": [0, 1, 2],
                "runs": [
                    {"name": "fedavg", "config": "experiments/tug_fedavg.yaml"},
                    {
                        "name": "fedadam",
                        "config": "experiments/tug_fedavg.yaml",
                        "overrides": [
                            "--seed_everything",
                            "{seed}",
                            "--trainer.strategy.init_args.seed",
                            "{seed}",
                        ],
                    },
                ],
            }
        )
    )
    sweep_dir = run_sweep(run_list, out_dir=tmp_path / "out", log=lambda _: None)
    names = [c[c.index("--run.name") + 1] for c in calls]
    assert names == [f"{n}-seed{s}" for n in ("fedavg", "fedadam") for s in (0, 1, 2)]
    fedadam_1 = calls[4]
    assert fedadam_1[fedadam_1.index("--trainer.strategy.init_args.seed") + 1] == "1"
    assert fedadam_1.count("--seed_everything") == 1  # {seed} given: nothing added
    assert calls[2][calls[2].index("--seed_everything") + 1] == "2"  # added
    summary = json.loads((sweep_dir / "summary.json").read_text())
    assert [row["group"] for row in summary] == ["fedavg", "fedadam"]
    assert summary[0]["test/mcc"]["mean"] == pytest.approx(0.1)
    assert summary[0]["test/mcc"]["sd"] == pytest.approx(0.1)  # sample sd of 0, 0.1, 0.2
    assert summary[1]["test/mcc"]["mean"] == pytest.approx(0.6) and summary[1]["seeds"] == 3
    assert "| fedadam | 3 | 0.6000 ± 0.1000 |" in (sweep_dir / "summary.md").read_text()
    with pytest.raises(ConfigError, match="seeds="):
        run_sweep(
            _write(
                tmp_path / "bad.yaml",
                {"kind": "run_list", "seeds": [1, 1], "runs": [{"config": "x.yaml"}]},
            ),
            out_dir=tmp_path / "bad",
        )


def _write(path, data):
    path.write_text(yaml.safe_dump(data))
    return path


def test_jobs_run_at_most_n_at_a_time_and_report_each_exit_status(tmp_path, monkeypatch):
    from lbp_motion.pipelines import sweep_jobs

    # each job sleeps argv[0] seconds and exits with status argv[1]
    monkeypatch.setattr(
        sweep_jobs,
        "PROGRAM",
        (
            sys.executable,
            "-c",
            "import sys, time; time.sleep(float(sys.argv[1])); sys.exit(int(sys.argv[2]))",
        ),
    )
    monkeypatch.setattr(sweep_jobs, "POLL_SECONDS", 0.05)
    jobs = [sweep_jobs.Job(k, [str(0.3), str(k)], tmp_path / f"{k}.log") for k in range(5)]
    running, most, done = set(), 0, {}

    def start(job):
        nonlocal most
        running.add(job.key)
        most = max(most, len(running))

    def finish(job, status):
        running.discard(job.key)
        done[job.key] = status

    sweep_jobs.run_jobs(jobs, 2, start, finish)
    assert done == {k: k for k in range(5)} and most == 2
    assert all((tmp_path / f"{k}.log").is_file() for k in range(5))


@pytest.fixture
def sleeping_jobs(monkeypatch):
    """sweep_jobs whose jobs sleep ``argv[0]`` seconds instead of running lbp."""
    from lbp_motion.pipelines import sweep_jobs

    monkeypatch.setattr(
        sweep_jobs,
        "PROGRAM",
        (sys.executable, "-c", "import sys, time; time.sleep(float(sys.argv[1]))"),
    )
    monkeypatch.setattr(sweep_jobs, "POLL_SECONDS", 0.05)
    return sweep_jobs


def test_an_interrupt_stops_the_running_jobs(tmp_path, sleeping_jobs):
    sweep_jobs = sleeping_jobs
    jobs = [
        sweep_jobs.Job("quick", ["0.1"], tmp_path / "q.log"),
        sweep_jobs.Job("slow", ["60"], tmp_path / "s.log"),
    ]
    began = time.monotonic()

    def finish(job, status):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        sweep_jobs.run_jobs(jobs, 2, lambda job: None, finish)
    assert time.monotonic() - began < 30  # the 60 s job was stopped, not waited for


def test_runs_interrupted_in_processes_keep_their_seconds(tmp_path, monkeypatch):
    """--jobs 2, Ctrl-C as the first run ends: both runs are interrupted, each with the
    seconds it ran (a resumed run adds them to its own)."""
    import lbp_motion.pipelines.sweep as sweep_module
    from lbp_motion.pipelines import sweep_jobs

    monkeypatch.setattr(
        sweep_jobs, "PROGRAM", (sys.executable, "-c", "import time; time.sleep(1.0)")
    )
    monkeypatch.setattr(sweep_jobs, "POLL_SECONDS", 0.05)

    def ctrl_c_as_one_ends(jobs, n, start, done):
        def interrupted(job, status):
            raise KeyboardInterrupt

        return sweep_jobs.run_jobs(jobs, n, start, interrupted)

    monkeypatch.setattr(sweep_module, "run_jobs", ctrl_c_as_one_ends)
    run_list = tmp_path / "pair.yaml"
    entries = [{"name": name, "config": "x.yaml", "overrides": []} for name in ("a", "b")]
    run_list.write_text(yaml.safe_dump({"kind": "run_list", "runs": entries}))
    with pytest.raises(KeyboardInterrupt):
        run_sweep(run_list, out_dir=tmp_path, jobs=2, log=lambda _: None)
    runs = json.loads((tmp_path / "pair" / "state.json").read_text())["runs"]
    assert [r["status"] for r in runs] == ["interrupted", "interrupted"]
    assert all(r["seconds"] >= 1.0 for r in runs)


def test_a_job_iterator_can_wait_for_a_running_job(tmp_path, sleeping_jobs):
    """A run list entry reading a running entry's run directory waits (sweep_jobs.WAIT)."""
    sweep_jobs = sleeping_jobs
    events = []

    def jobs():
        yield sweep_jobs.Job("first", ["0.4"], tmp_path / "1.log")
        while ("done", "first") not in events:
            yield sweep_jobs.WAIT
        yield sweep_jobs.Job("second", ["0"], tmp_path / "2.log")

    sweep_jobs.run_jobs(
        jobs(), 2, lambda job: events.append(("start", job.key)), lambda job, s: events.append(("done", job.key))
    )  # fmt: skip
    assert events == [("start", "first"), ("done", "first"), ("start", "second"), ("done", "second")]  # fmt: skip

    def stuck():
        yield sweep_jobs.WAIT

    with pytest.raises(RuntimeError, match="waits while no job is running"):
        sweep_jobs.run_jobs(stuck(), 2, lambda job: None, lambda job, s: None)


def test_a_run_list_with_jobs_gives_the_runs_of_one_at_a_time(tiny_tug, tmp_path):
    """--jobs 2: each run in its own process, logs in logs/, the same metrics as the
    runs made one after the other in this process."""
    run_list = tmp_path / "pair.yaml"
    run_list.write_text(
        yaml.safe_dump(
            {
                "kind": "run_list",
                "seeds": [0, 1],
                "runs": [
                    {
                        "name": "quick",
                        "config": "experiments/tug/attention_small.yaml",
                        "overrides": [],
                    }
                ],
            }
        )
    )
    common = ["--data.root", str(tiny_tug), *TINY_ARGS, "--trainer.max_epochs", "1"]
    dirs = {}
    for jobs in (1, 2):
        out = tmp_path / f"jobs{jobs}"
        dirs[jobs] = run_sweep(
            run_list, out_dir=out, overrides=common, jobs=jobs, log=lambda _: None
        )
    states = {j: json.loads((d / "state.json").read_text())["runs"] for j, d in dirs.items()}
    assert [r["status"] for r in states[2]] == ["finished", "finished"]
    assert sorted(p.name for p in (dirs[2] / "logs").iterdir()) == [
        "quick-seed0.log",
        "quick-seed1.log",
    ]
    for one, two in zip(states[1], states[2]):
        assert one["name"] == two["name"]
        assert two["metrics"]["test/accuracy"] == pytest.approx(one["metrics"]["test/accuracy"])
        assert two["metrics"]["val/loss"] == pytest.approx(one["metrics"]["val/loss"], rel=1e-4)
    assert (dirs[2] / "summary.md").is_file()


def test_a_run_list_override_with_spaces_or_brackets_reaches_lbp_as_one_argument(tmp_path):
    run_list = tmp_path / "one.yaml"
    value = "{sites: 3, nuisance: 1.0}"
    run_list.write_text(
        yaml.safe_dump(
            {
                "kind": "run_list",
                "runs": [
                    {"name": "a", "config": "x.yaml", "overrides": ["--d.s", value, "--p", "[m.*]"]}
                ],
            }
        )
    )
    spec = load_sweep(run_list)
    argv = command_for(spec, run_parameters(spec, 0))
    assert argv[-4:] == ["--d.s", value, "--p", "[m.*]"]


def test_a_run_lists_columns_are_the_metrics_its_table_shows(tmp_path, monkeypatch):
    import lbp_motion.pipelines.sweep as sweep_module
    from lbp_motion.evaluation.results import make_run_dir
    from lbp_motion.runs import RunResult

    def fake_fit(argv):
        run_dir = make_run_dir(
            argv[argv.index("--run.out_dir") + 1], argv[argv.index("--run.name") + 1]
        )
        metrics = {"test/mcc": 0.5, "test/f1/low": 0.25, "test/f1/high": 0.125, "test/loss": 1.0}
        (run_dir / "metrics.json").write_text(json.dumps(metrics))
        return RunResult.from_run_dir(run_dir)

    monkeypatch.setattr(sweep_module, "run_arguments", fake_fit)
    run_list = _write(
        tmp_path / "cols.yaml",
        {
            "kind": "run_list",
            "columns": ["test/f1/low", "test/f1/high", "test/absent"],
            "runs": [{"name": "a", "config": "x.yaml"}],
        },
    )
    sweep_dir = run_sweep(run_list, out_dir=tmp_path / "out", log=lambda _: None)
    header = (sweep_dir / "results.md").read_text().splitlines()[2]
    assert header.endswith("| test/mcc | test/f1/low | test/f1/high |")  # metric first, as listed
    with pytest.raises(ConfigError, match="columns="):
        parse_sweep({"kind": "run_list", "columns": "test/mcc", "runs": [{"config": "x.yaml"}]})
