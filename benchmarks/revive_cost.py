"""What the dead-neuron term (``eventax-train --revive``) costs per training step.

    python benchmarks/revive_cost.py [--model lif] [--loss ttfs] [--steps 12]

Two trainers on Yin-Yang 5-50-3 (batch 32, the same loss and seed, so the same calibrated
network), one with ``revive=0`` and one with ``revive=1``, run
:func:`eventax_dsl.train.engine.train_step` on the same batches, alternately, without
applying the updates (every call sees the same parameters). The first call of each is
compilation and is dropped; the script prints the median seconds per step and the ratio.
The batch's dead hidden neurons come out of the same forward pass as the loss
(:func:`eventax_dsl.train.engine.dead_mask`), so the term should cost little beyond
differentiating the hidden spike conditions at the stopping time (``T`` for the voltage
losses, whose forward pass then keeps the hidden state of the same simulation).
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
    p.add_argument("--loss", default="ttfs", help="ttfs, max, integral or exp-integral")
    p.add_argument("--steps", type=int, default=12)
    args = p.parse_args(argv)

    from _steps import stepper  # noqa: PLC0415

    from eventax_dsl.sim.bench import time_alternately  # noqa: PLC0415
    from eventax_dsl.train import TrainConfig  # noqa: PLC0415
    from eventax_dsl.train.trainer import Trainer  # noqa: PLC0415

    def make(revive):
        cfg = TrainConfig(task="yinyang", model=args.model, loss=args.loss, hidden=(50,),
                          batch_size=32, train_size=320, val_size=32, test_size=32,
                          progress=False, plots=False, revive=revive)
        return Trainer(cfg, log=None)

    trainers = {0.0: make(0.0), 1.0: make(1.0)}

    # step 0 compiles and is not timed
    med = time_alternately({k: stepper(t) for k, t in trainers.items()}, args.steps - 1, warmup=1)
    print(f"{args.model} 5-50-3 {args.loss}, batch 32, median of {args.steps - 1} steps: "
          f"{med[0.0]:.3f} s without --revive, {med[1.0]:.3f} s with it, "
          f"ratio {med[1.0] / med[0.0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
