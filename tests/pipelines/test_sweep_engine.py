"""`lbp sweep` on W&B's own sweep engine: parity with the engine, Bayesian search that
learns from results, hyperband early termination, and the callback that stops a fit."""

import json
import math
import random
import sys
from pathlib import Path

import pytest
import yaml

from lbp_motion.cli import main
from lbp_motion.pipelines.sweep import run_sweep
from lbp_motion.pipelines.sweep_engine import engine
from lbp_motion.pipelines.sweep_monitor import callback_arguments, history_path, read_history
from tests.conftest import ROOT, TINY_ARGS
from tests.pipelines import standin_fit

W_AND_B_SWEEPS = [
    p
    for p in sorted(ROOT.glob("experiments/**/*.yaml"))
    if "sweeps" in p.parts and yaml.safe_load(p.read_text()).get("kind") != "run_list"
]
STANDIN = str(Path(standin_fit.__file__))


def _state(sweep_dir: Path) -> list[dict]:
    return json.loads((sweep_dir / "state.json").read_text())["runs"]


def _sweep_file(path: Path, **fields) -> Path:
    raw = {
        "name": path.stem,
        "program": "lbp",
        "metric": {"name": "val/f1_macro", "goal": "maximize"},
        "parameters": {"x": {"min": 0.0, "max": 1.0}, "y": {"min": 0.0, "max": 1.0}},
        "command": ["${env}", "lbp", "fit", "${args}"],
        **fields,
    }
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@pytest.fixture
def standin(monkeypatch):
    """`lbp fit` replaced by the stand-in in this process; the calls it got."""
    import lbp_motion.pipelines.sweep as sweep_module

    calls = []

    def fit(argv):
        calls.append(argv)
        return standin_fit.fit(argv[1:])

    monkeypatch.setattr(sweep_module, "run_arguments", fit)
    return calls


@pytest.mark.parametrize("path", W_AND_B_SWEEPS, ids=lambda p: p.stem)
def test_every_sweep_file_is_valid_for_wandb(path):
    """`wandb sweep FILE` validates with the same package; a file it refuses fails here."""
    raw = yaml.safe_load(path.read_text())
    assert engine().schema_violations_from_proposed_config(raw) == []
    engine().SweepConfig(raw)  # raises on a file W&B's server would refuse


def test_grid_and_seeded_random_runs_are_the_engines_choices(standin, tmp_path):
    sweeps = engine()
    grid_file = ROOT / "experiments" / "sweeps" / "quickstart_grid.yaml"
    raw = yaml.safe_load(grid_file.read_text())
    sweep_dir = run_sweep(grid_file, out_dir=tmp_path, log=lambda _: None)
    expected = sweeps.next_runs({"method": "grid", "parameters": raw["parameters"]}, [], n=10)
    expected = [{k: v["value"] for k, v in r.config.items()} for r in expected if r is not None]
    assert [r["params"] for r in _state(sweep_dir)] == expected and len(expected) == 4
    for call, params in zip(standin, expected):  # the values reach lbp as the agent passes them
        assert all(f"--{k}={v}" in call for k, v in params.items())

    random_file = ROOT / "experiments" / "sweeps" / "quickstart_random.yaml"
    raw = yaml.safe_load(random_file.read_text())
    sweep_dir = run_sweep(random_file, count=5, seed=7, out_dir=tmp_path, log=lambda _: None)
    chosen = [r["params"] for r in _state(sweep_dir)]
    for k, params in enumerate(chosen):  # run k: the engine's draw after seeding with (7, k)
        random.seed(f"lbp-sweep-7-{k}")
        draw = sweeps.next_run({"method": "random", "parameters": raw["parameters"]}, [])
        assert params == pytest.approx({key: v["value"] for key, v in draw.config.items()})
    assert len({json.dumps(p, sort_keys=True) for p in chosen}) == 5
    other = run_sweep(random_file, count=2, seed=8, out_dir=tmp_path / "8", log=lambda _: None)
    assert [r["params"] for r in _state(other)] != chosen[:2]


def _distance(params: dict, optimum: tuple[float, float]) -> float:
    return math.hypot(params["x"] - optimum[0], params["y"] - optimum[1])


@pytest.mark.parametrize("optimum", [(0.7, 0.2), (0.15, 0.85)])
def test_bayesian_search_concentrates_near_the_optimum_better_than_random(
    standin, tmp_path, monkeypatch, optimum
):
    """16 runs of a 2-D search for the stand-in's peak: after 6 runs, Bayesian search's
    proposals lie nearer the peak than random search's, for every seed; moving the peak
    moves them (the proposals depend on the results)."""
    monkeypatch.setenv("STANDIN_OPTIMUM", ",".join(map(str, optimum)))
    medians = {}
    for method in ("bayes", "random"):
        path = _sweep_file(tmp_path / f"{method}.yaml", method=method)
        for seed in range(3):
            out = tmp_path / f"{method}-{seed}"
            sweep_dir = run_sweep(path, count=16, seed=seed, out_dir=out, log=lambda _: None)
            later = sorted(_distance(r["params"], optimum) for r in _state(sweep_dir)[6:])
            medians[method, seed] = later[len(later) // 2]
    for seed in range(3):
        assert medians["bayes", seed] < 0.6 * medians["random", seed], medians
        assert medians["bayes", seed] < 0.25, medians


def test_hyperband_stops_the_runs_below_the_median_at_a_band(standin, tmp_path, capsys):
    """Runs of quality 0.9, 0.8, 0.7, 0.95, 0.1, one after another, their metric
    q * (1 - 0.5**epoch); hyperband with min_iter 2, eta 2 (bands at 2, 4, 8 epochs;
    strict, W&B's default, compares the value at the band) stops a run whose value at a
    band is below the median (index int(n / 2) of the values sorted best first) of all
    runs that reached it: 0.9 and 0.8 set the medians, 0.7 (third of three at epoch 2)
    and 0.1 stop at epoch 2; 0.95 is above every median and runs to the end."""
    path = _sweep_file(
        tmp_path / "hyperband.yaml",
        method="grid",
        parameters={"q": {"values": [0.9, 0.8, 0.7, 0.95, 0.1]}},
        early_terminate={"type": "hyperband", "min_iter": 2, "eta": 2},
    )
    sweep_dir = run_sweep(path, out_dir=tmp_path, log=lambda _: None)
    runs = _state(sweep_dir)
    assert [r["status"] for r in runs] == ["finished", "finished", "stopped", "finished", "stopped"]
    assert [len(r["history"]) for r in runs] == [8, 8, 2, 8, 2]
    assert [r.get("stopped_at") for r in runs] == [None, None, 2, None, 2]
    assert runs[2]["metrics"]["val/f1_macro"] == pytest.approx(0.7 * 0.75)  # stopped, not failed
    assert [r["history"] for r in runs] == [
        read_history(sweep_dir, r["name"])["values"] for r in runs
    ]
    # without early_terminate nothing stops
    plain = _sweep_file(
        tmp_path / "plain.yaml", method="grid", parameters={"q": {"values": [0.9, 0.1]}}
    )
    assert [
        r["status"] for r in _state(run_sweep(plain, out_dir=tmp_path, log=lambda _: None))
    ] == [
        "finished",
        "finished",
    ]
    # the command line says which runs were stopped and does not call them failed
    assert main(["sweep", str(path), "--out_dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "early termination stopped 2 run(s): run-2, run-4" in out and "did not finish" not in out


def test_parallel_runs_are_proposed_as_slots_free_and_judged_against_each_other(
    tmp_path, monkeypatch
):
    """--jobs 2 with the stand-in as a program: a Bayesian sweep with hyperband, each run's
    values read by the others from history/, every run ends finished or stopped."""
    from lbp_motion.pipelines import sweep_jobs

    monkeypatch.setattr(sweep_jobs, "PROGRAM", (sys.executable, STANDIN))
    monkeypatch.setattr(sweep_jobs, "POLL_SECONDS", 0.05)
    monkeypatch.setenv("STANDIN_EPOCH_SECONDS", "0.05")
    path = _sweep_file(
        tmp_path / "parallel.yaml",
        method="bayes",
        early_terminate={"type": "hyperband", "min_iter": 2, "eta": 2},
    )
    sweep_dir = run_sweep(path, count=6, jobs=2, out_dir=tmp_path, log=lambda _: None)
    runs = _state(sweep_dir)
    assert {r["status"] for r in runs} <= {"finished", "stopped"} and len(runs) == 6
    assert len({json.dumps(r["params"], sort_keys=True) for r in runs}) == 6
    for r in runs:
        assert len(r["history"]) == (r.get("stopped_at") or standin_fit.EPOCHS)
        assert r["metrics"]["val/f1_macro"] == pytest.approx(r["history"][-1])


@pytest.mark.e2e
def test_the_monitor_records_each_epoch_and_stops_a_real_fit(tiny_tug, tmp_path):
    """A real `lbp fit` with the callback `lbp sweep` adds: two earlier runs scored 2.0 at
    every epoch (out of reach), so hyperband (min_iter 1) stops this one after its first
    validation; Lightning ends the fit there and tests it. Against runs scoring 0.0 the
    same fit runs all its epochs."""
    for best, epochs in ((2.0, 1), (0.0, 3)):
        sweep_dir = tmp_path / f"sweep-{best}"
        sweep_dir.mkdir()
        _sweep_file(
            sweep_dir / "sweep.yaml",
            method="random",
            parameters={"trainer.max_epochs": {"value": 3}},
            early_terminate={"type": "hyperband", "min_iter": 1, "eta": 2},
        )
        done = [
            {
                "name": f"run-{k}",
                "index": k,
                "status": "finished",
                "params": {},
                "history": [best] * 3,
            }
            for k in range(2)
        ]
        (sweep_dir / "state.json").write_text(json.dumps({"runs": done}))
        argv = [
            "fit",
            "--config",
            str(ROOT / "experiments" / "tug" / "attention_small.yaml"),
            "--data.root",
            str(tiny_tug),
            *TINY_ARGS,
            "--trainer.max_epochs",
            "3",
            "--run.out_dir",
            str(tmp_path / "runs"),
            "--run.name",
            f"run-2-{best}",
            *callback_arguments(sweep_dir, "run-2"),
        ]
        assert main(argv) == 0
        history = read_history(sweep_dir, "run-2")
        assert len(history["values"]) == epochs
        assert history["stopped_at"] == (1 if best == 2.0 else None)
        run_dir = tmp_path / "runs" / f"run-2-{best}" / "version_0"
        metrics = json.loads((run_dir / "metrics.json").read_text())
        assert "test/accuracy" in metrics  # a stopped fit is tested like any other
        assert history["values"][-1] == pytest.approx(metrics["final_val/f1_macro"])

    # the run's config fitted again by hand once the sweep recorded run-2 as done (its
    # config.yaml keeps the callback): the sweep's history is left alone, no early stop
    sweep_dir = tmp_path / "sweep-2.0"
    state = json.loads((sweep_dir / "state.json").read_text())
    state["runs"].append({"name": "run-2", "index": 2, "status": "stopped", "params": {}})
    (sweep_dir / "state.json").write_text(json.dumps(state))
    before = history_path(sweep_dir, "run-2").read_bytes()
    argv[argv.index("--run.name") + 1] = "run-2-again"
    argv[-2:] = [f"--trainer.callbacks.init_args.sweep_dir={sweep_dir}", argv[-1]]
    assert main(argv) == 0
    assert history_path(sweep_dir, "run-2").read_bytes() == before
    again = json.loads(
        (tmp_path / "runs" / "run-2-again" / "version_0" / "metrics.json").read_text()
    )
    assert again["epochs_trained"] == 3


def test_the_monitor_keeps_its_values_in_the_checkpoint_and_a_stopped_run_stays_stopped(
    tmp_path,
):
    """What a resumed run's monitor gets back from last.ckpt (Lightning calls
    load_state_dict before on_fit_start): its values go on, the history file holds them
    at once (for the runs beside it), a run stopped before the interrupt stops again
    at once, and the checkpoint of another run is ignored."""
    from types import SimpleNamespace

    from lbp_motion.pipelines.sweep_monitor import SweepMonitor

    _sweep_file(
        tmp_path / "sweep.yaml",
        method="random",
        parameters={"trainer.max_epochs": {"value": 3}},
        early_terminate={"type": "hyperband", "min_iter": 1, "eta": 2},
    )
    (tmp_path / "state.json").write_text(json.dumps({"runs": []}))
    saved = SweepMonitor(str(tmp_path), "run-0")
    saved.report(0.25)
    saved.report(0.5)
    state = saved.state_dict()
    history_path(tmp_path, "run-0").unlink()

    for stopped_at, stops in ((None, False), (2, True)):
        resumed = SweepMonitor(str(tmp_path), "run-0")
        resumed.load_state_dict({**state, "stopped_at": stopped_at})
        trainer = SimpleNamespace(should_stop=False)
        resumed.on_fit_start(trainer, None)
        assert resumed.values == [0.25, 0.5] and trainer.should_stop is stops
        assert read_history(tmp_path, "run-0")["values"] == [0.25, 0.5]
        resumed.report(0.75)
        assert read_history(tmp_path, "run-0")["values"] == [0.25, 0.5, 0.75]

    other = SweepMonitor(str(tmp_path), "run-1")
    other.load_state_dict(state)  # run-0's values are not run-1's
    other.on_fit_start(SimpleNamespace(should_stop=False), None)
    assert other.values == []
