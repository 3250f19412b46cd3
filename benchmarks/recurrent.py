"""Cost of a training step of PLAAN's LSTM stacks: padded layers against packed sequences
(a measurement, not a test).

:class:`~lbp_motion.models.recurrent.StackedLSTM` runs each layer over the padded batch
and zeroes the output past each length (a backward direction runs over each sequence
reversed within its length); before 2026-12-05 it packed the sequences
(``pack_padded_sequence``), which gives the same numbers (tests/models/test_recurrent.py)
but whose backward pass on CPU is several times slower as soon as one sequence of the
batch is shorter than the rest, as the last segment of each EmoPain recording is.

For each stack (``--stacks``; default PLAAN's LSTM-DNN 128-64-128 and its Bi-LSTM-first
variant; ``1024-512-256`` is the LSTM of experiments/emopain/pain_lstm.yaml) it times
``--reps`` forward and backward passes (after one untimed pass) of a batch of
``--batch-size`` sequences of ``--frames`` frames of 70 features (EmoPain's joints and
sEMG), one of them ``--short`` frames long, through

* ``packed``: each layer on ``pack_padded_sequence`` / ``pad_packed_sequence``;
* ``padded``: ``StackedLSTM`` as it is;

and reports the median seconds per step and ``padded / packed`` (target: <= 0.5).

Run: ``python benchmarks/recurrent.py [--threads 1] [--stacks 128-64-128 b128-64-128]``
(a leading ``b`` makes the first layer bidirectional).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from lbp_motion.models.recurrent import StackedLSTM

REPO = Path(__file__).resolve().parents[1]
TARGET_RATIO = 0.5
FEATURES = 70


def packed_forward(stack: StackedLSTM, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    h = x
    for lstm in stack.layers:
        seq = pack_padded_sequence(h, lengths, batch_first=True, enforce_sorted=False)
        h = pad_packed_sequence(lstm(seq)[0], batch_first=True, total_length=x.shape[1])[0]
    return h


def seconds_per_step(step, reps: int) -> float:
    step()  # untimed
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(spec: str, args: argparse.Namespace) -> dict:
    bidirectional = spec.startswith("b")
    sizes = [int(s) for s in spec.lstrip("b").split("-")]
    torch.manual_seed(0)
    stack = StackedLSTM(FEATURES, sizes, bidirectional_first=bidirectional)
    x = torch.randn(args.batch_size, args.frames, FEATURES)
    lengths = torch.full((args.batch_size,), args.frames)
    lengths[0] = args.short
    mask = torch.arange(args.frames) < lengths.unsqueeze(1)

    def step(forward):
        def run():
            stack.zero_grad()
            forward().square().mean().backward()

        return run

    packed = seconds_per_step(step(lambda: packed_forward(stack, x, lengths)), args.reps)
    padded = seconds_per_step(step(lambda: stack(x, mask)), args.reps)
    return {
        "stack": spec,
        "packed_s": packed,
        "padded_s": padded,
        "ratio": padded / packed,
        "meets_target": padded / packed <= TARGET_RATIO,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stacks", nargs="+", default=["128-64-128", "b128-64-128"])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--frames", type=int, default=180)
    parser.add_argument("--short", type=int, default=100)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "recurrent.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = [measure(spec, args) for spec in args.stacks]
    print(f"{'stack':<16}{'packed s/step':>15}{'padded s/step':>15}{'ratio':>8}  target <= 0.5")
    for r in rows:
        print(f"{r['stack']:<16}{r['packed_s']:>15.3f}{r['padded_s']:>15.3f}{r['ratio']:>8.2f}")
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    args.out.write_text(json.dumps({"settings": settings, "results": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
