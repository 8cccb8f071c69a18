"""Training and evaluation speed against ``lanes`` (samples simulated side by side).

    python benchmarks/lanes.py --task mnist --lanes all 1 [--resume RUN_DIR] [--data-dir DIR]
    python benchmarks/lanes.py --task yinyang --model izhikevich --loss exp-integral --lanes all 1

One trainer per value of ``lanes`` (``all``: the whole batch in one ``vmap``), with the
same parameters: those of the run saved in ``--resume`` (a network part way through
training is more active, and more uneven across samples, than a fresh one), else a
fresh network with the fixed input gain ``--gain``. Timed alternately, so that other
load hits every variant alike (:func:`eventax_dsl.sim.bench.time_alternately`):

- a training step (:func:`eventax_dsl.train.engine.train_step`, the update not
  applied) on ``--steps`` different batches, after one untimed round (compilation);
- an evaluation of the first ``--eval`` validation samples (``Trainer.evaluate``,
  batches of ``--eval-batch``), after one untimed round.

Printed per variant: seconds per training step, samples/s and the speed-up over the
first variant for both, and the largest difference of the validation loss from the
first variant's (the order of floating-point sums only).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

MNIST_DIR = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "mnist"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--task", default="mnist", choices=("mnist", "yinyang"))
    p.add_argument("--model", default="lif")
    p.add_argument("--loss", default="exp-integral")
    p.add_argument("--hidden", type=int, default=None, help="default: 200 (mnist), 50 (yinyang)")
    p.add_argument("--batch", type=int, default=None, help="default: 16 (mnist), 32 (yinyang)")
    p.add_argument("--lanes", nargs="+", default=["all", "1"], help="'all' or a number, each")
    p.add_argument("--resume", default=None, help="take the parameters of this run directory")
    p.add_argument("--gain", type=float, default=None,
                   help="fixed initial gain without --resume (default: 0.354 mnist, 1 yinyang)")
    p.add_argument("--data-dir", default=str(MNIST_DIR))
    p.add_argument("--steps", type=int, default=5, help="timed training steps per variant")
    p.add_argument("--eval", type=int, default=512, help="validation samples evaluated")
    p.add_argument("--eval-batch", type=int, default=256)
    args = p.parse_args(argv)
    mnist = args.task == "mnist"
    batch = args.batch or (16 if mnist else 32)

    from _steps import stepper  # noqa: PLC0415
    from eventax_dsl.sim.bench import time_alternately  # noqa: PLC0415
    from eventax_dsl.train import TrainConfig  # noqa: PLC0415
    from eventax_dsl.train.tasks import Split  # noqa: PLC0415
    from eventax_dsl.train.trainer import Trainer  # noqa: PLC0415

    batches = args.steps
    trainers = {}
    for text in args.lanes:
        lanes = None if text == "all" else int(text)
        if args.resume:
            copy = Path(tempfile.mkdtemp()) / "run"  # never write to the user's run
            shutil.copytree(args.resume, copy)
            t = Trainer.resume(copy, log=None, eval_batch_size=args.eval_batch, plots=False,
                               progress=False)
        else:
            cfg = TrainConfig(task=args.task, model=args.model, loss=args.loss,
                              hidden=(args.hidden or (200 if mnist else 50),), batch_size=batch,
                              train_size=batch * batches, val_size=args.eval, test_size=batch,
                              eval_batch_size=args.eval_batch, plots=False, progress=False,
                              init_gain=args.gain or (0.354 if mnist else 1.0),
                              data_dir=args.data_dir if mnist else None)
            t = Trainer(cfg, log=None)
        t.lanes = lanes
        v = t.data.val
        t.data = t.data._replace(val=Split(v.x[:args.eval], v.y[:args.eval], v.t0[:args.eval]))
        trainers[text] = t
    first = next(iter(trainers.values()))
    bs = first.cfg.batch_size
    train_s = time_alternately({k: stepper(t, batch=bs, batches=batches)
                                for k, t in trainers.items()}, args.steps, warmup=1)
    results = {}

    def evaluation(k, t):
        def make(i):
            def call():
                results[k] = t.evaluate("val")
                return results[k]["acc"]
            return call
        return make

    eval_s = time_alternately({k: evaluation(k, t) for k, t in trainers.items()}, 1, warmup=1)
    c = first.cfg
    print(f"{c.task} {c.model} -> {c.readout_model}, hidden {c.hidden}, {c.loss}, training batch "
          f"{bs}, evaluation {args.eval} samples in batches of {args.eval_batch}"
          + (f", parameters of {args.resume}" if args.resume else ""))
    print(f"{'lanes':>6} {'s/step':>8} {'samples/s':>10} {'speed-up':>9} {'eval samples/s':>15} "
          f"{'speed-up':>9} {'val loss diff':>14}")
    k0 = args.lanes[0]
    for k in args.lanes:
        diff = abs(results[k]["loss"] - results[k0]["loss"])
        print(f"{k:>6} {train_s[k]:8.3f} {bs / train_s[k]:10.1f} {train_s[k0] / train_s[k]:8.2f}x "
              f"{args.eval / eval_s[k]:15.1f} {eval_s[k0] / eval_s[k]:8.2f}x {diff:14.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
