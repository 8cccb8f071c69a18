"""Training-step time under different simulator options, timed alternately.

    python benchmarks/sim_options.py --model qif --loss ttfs \\
        --variant stepping=solve,adjoint_checkpoints=4096 --variant stepping=solve

(``adjoint_checkpoints`` and ``carry_step`` act only with ``stepping="solve"``.)

One Yin-Yang trainer per variant (5-50-3, ``--batch`` samples per step, a fixed input
gain so that every variant has the same weights), each with its
:class:`~eventax_dsl.sim.SimOptions` changed as given (``name=value`` pairs joined by
``,``; ``default`` changes nothing). They run
:func:`eventax_dsl.train.engine.train_step` on the same batches, alternately, without
applying the updates; the first round (compilation) is dropped. Printed per variant:
median seconds per step, samples/s, the speed-up over the first variant, and the
largest difference of its loss and gradients from the first variant's (0 when an
option changes only how the gradient is computed, not what it is), absolute and
relative to each gradient leaf's largest entry.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def parse_variant(text: str) -> dict:
    """``"a=1,b=False"`` -> ``{"a": 1, "b": False}``; ``"default"`` -> ``{}``."""
    if text == "default":
        return {}
    out = {}
    for item in text.split(","):
        name, _, value = item.partition("=")
        try:
            out[name.strip()] = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            out[name.strip()] = value.strip()
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="qif")
    p.add_argument("--loss", default="ttfs")
    p.add_argument("--hidden", type=int, default=50)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--gain", type=float, default=0.5, help="fixed initial gain (init_gain)")
    p.add_argument("--steps", type=int, default=5, help="timed steps per variant")
    p.add_argument("--x64", action="store_true", help="float64 (default float32)")
    p.add_argument("--variant", action="append", required=True,
                   help="SimOptions changes, e.g. adjoint_checkpoints=4096 (repeatable)")
    args = p.parse_args(argv)

    import equinox as eqx  # noqa: PLC0415
    import jax  # noqa: PLC0415

    jax.config.update("jax_enable_x64", args.x64)
    import jax.numpy as jnp  # noqa: PLC0415

    from _steps import stepper  # noqa: PLC0415
    from eventax_dsl.sim.bench import time_alternately  # noqa: PLC0415
    from eventax_dsl.train import TrainConfig  # noqa: PLC0415
    from eventax_dsl.train.engine import batch_loss  # noqa: PLC0415
    from eventax_dsl.train.trainer import Trainer  # noqa: PLC0415

    batches = 4
    cfg = TrainConfig(task="yinyang", model=args.model, loss=args.loss, hidden=(args.hidden,),
                      batch_size=args.batch, train_size=args.batch * batches,
                      val_size=args.batch, test_size=args.batch, init_gain=args.gain,
                      plots=False, progress=False, x64=args.x64)
    makers, grads = {}, {}
    for text in args.variant:
        trainer = Trainer(cfg, log=None)
        trainer.options = dataclasses.replace(trainer.options, **parse_variant(text))
        makers[text] = stepper(trainer, batch=args.batch, batches=batches)
        split = trainer.data.train
        x, y, t0 = (jnp.asarray(a[:args.batch]) for a in (split.x, split.y, split.t0))
        grads[text] = eqx.filter_jit(lambda p, x, y, t0, t=trainer: jax.value_and_grad(
            batch_loss, has_aux=True)(p, t.static, x, y, t0, t.readout, t.options))(
            trainer.params, x, y, t0)
    first = args.variant[0]
    seconds = time_alternately(makers, args.steps, warmup=1)
    print(f"{args.model} 5-{args.hidden}-3, {args.loss}, batch {args.batch}, gain {args.gain:g}")
    w = max(len(v) for v in [*args.variant, "variant"])
    print(f"{'variant':>{w}} {'s/step':>8} {'samples/s':>10} {'speed-up':>9} {'max |diff|':>11} "
          f"{'relative':>9}")
    ref = jax.tree_util.tree_leaves((grads[first][0][0], grads[first][1]))
    for text in args.variant:
        leaves = jax.tree_util.tree_leaves((grads[text][0][0], grads[text][1]))
        diff = max(float(jnp.max(jnp.abs(a - b))) for a, b in zip(ref, leaves))
        # per leaf, relative to that leaf's largest entry
        rel = max(float(jnp.max(jnp.abs(a - b)) / jnp.maximum(jnp.max(jnp.abs(a)), 1e-30))
                  for a, b in zip(ref, leaves))
        print(f"{text:>{w}} {seconds[text]:8.3f} {args.batch / seconds[text]:10.1f} "
              f"{seconds[first] / seconds[text]:8.2f}x {diff:11.2e} {rel:9.1e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
