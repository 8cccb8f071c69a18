"""What transmission delays (``eventax-train --delay``) cost per training step.

    python benchmarks/delay_cost.py [--model lif] [--loss ttfs] [--steps 12]

Three trainers on Yin-Yang 5-50-3 (batch 32, the same seed and a fixed input gain, so
the same weights): without delays, with ``--delay 0`` (the delay machinery on, but the
spikes are the same as without it: the pure overhead of the arrival tables), and with
``--delay 1`` (every hidden spike reaches the outputs 1 ms later, and each arrival is an
event of its own). They run :func:`eventax_dsl.train.engine.train_step` on the same
batches, alternately, without applying the updates. The first call of each is
compilation and is dropped; the script prints the median seconds per step and the
ratios to the run without delays.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="lif")
    p.add_argument("--loss", default="ttfs")
    p.add_argument("--steps", type=int, default=12)
    args = p.parse_args(argv)

    from _steps import stepper  # noqa: PLC0415

    from eventax_dsl.sim.bench import time_alternately  # noqa: PLC0415
    from eventax_dsl.train import TrainConfig  # noqa: PLC0415
    from eventax_dsl.train.trainer import Trainer  # noqa: PLC0415

    def make(delay):
        cfg = TrainConfig(task="yinyang", model=args.model, loss=args.loss, hidden=(50,),
                          batch_size=32, train_size=320, val_size=32, test_size=32,
                          progress=False, plots=False, init_gain=1.0, delay=delay)
        return Trainer(cfg, log=None)

    labels = {"none": None, "0 ms": 0.0, "1 ms": 1.0}
    trainers = {label: make(d) for label, d in labels.items()}

    # step 0 compiles and is not timed
    med = time_alternately({k: stepper(t) for k, t in trainers.items()}, args.steps - 1, warmup=1)
    base = med["none"]
    print(f"{args.model} 5-50-3 {args.loss}, batch 32, median of {args.steps - 1} steps: "
          + ", ".join(f"delay {k}: {v:.3f} s ({v / base:.2f}x)" for k, v in med.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
