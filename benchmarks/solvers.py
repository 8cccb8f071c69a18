"""Runge-Kutta solvers on the training networks: steps, speed and spike-time error.

    python benchmarks/solvers.py [--models qif eif izhikevich] [--batch 64]
        [--variant tsit5 --variant dopri8 --variant dopri8:3e-8]

For each model, the network ``eventax-train`` builds for it (Yin-Yang 5-50-3 at
initialisation, ``init_gain`` calibrated as in training; ``egru`` on the delayed XOR
task) runs ``--batch`` training samples in float64 with ``stepping="single"``, once per
variant (``solver`` or ``solver:tolerance``, the tolerance used as ``rtol`` and
``atol``; default 1e-8). Printed per variant: the solver steps per sample (largest and
mean), forward samples/s (best of 3 calls after compilation, one process), and every
spike time against a reference run with one solve per event at ``rtol = atol = 1e-12``:
the largest and median error in ms, over the samples that have the reference's number
of spikes (how many do not is printed too).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CASES = {
    "qif": ("yinyang", "ttfs"),
    "eif": ("yinyang", "ttfs"),
    "izhikevich": ("yinyang", "exp-integral"),
    "dendritic": ("yinyang", "exp-integral"),
    "egru": ("xor", "exp-integral"),
}


def parse_variant(text: str) -> tuple[str, float]:
    name, _, tol = text.partition(":")
    return name, float(tol) if tol else 1e-8


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="+", default=["qif", "eif", "izhikevich"],
                   choices=sorted(CASES))
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--variant", action="append", default=None,
                   help="solver[:tolerance], repeatable (default: tsit5, dopri8, dopri8:3e-8)")
    args = p.parse_args(argv)
    variants = [parse_variant(v) for v in (args.variant or ["tsit5", "dopri8", "dopri8:3e-8"])]

    import jax  # noqa: PLC0415

    jax.config.update("jax_enable_x64", True)
    import equinox as eqx  # noqa: PLC0415
    import jax.numpy as jnp  # noqa: PLC0415
    import numpy as np  # noqa: PLC0415

    from eventax_dsl.sim import simulate  # noqa: PLC0415
    from eventax_dsl.train import TrainConfig  # noqa: PLC0415
    from eventax_dsl.train.trainer import Trainer  # noqa: PLC0415

    for model in args.models:
        task, loss = CASES[model]
        trainer = Trainer(TrainConfig(task=task, model=model, loss=loss, x64=True,
                                      train_size=args.batch, batch_size=args.batch,
                                      val_size=8, test_size=8,
                                      progress=False, plots=False), log=None)
        net = eqx.combine(trainer.params, trainer.static)
        xs = jnp.asarray(trainer.data.train.x[: args.batch])
        t_max = trainer.cfg.t_max

        def run(options):
            f = jax.jit(jax.vmap(lambda x: simulate(net, x, t_max, options=options,
                                                    check=False)))
            r = jax.block_until_ready(f(xs))
            best = np.inf
            for _ in range(3):
                t = time.perf_counter()
                jax.block_until_ready(f(xs))
                best = min(best, time.perf_counter() - t)
            return r, best

        ref, _ = run(dataclasses.replace(trainer.options, stepping="solve", rtol=1e-12,
                                         atol=1e-12, root_tol=1e-13, max_solver_steps=200000))
        ref_times = np.sort(np.asarray(ref.spike_times), axis=1)
        for solver, tol in variants:
            r, seconds = run(dataclasses.replace(trainer.options, stepping="single",
                                                 solver=solver, rtol=tol, atol=tol))
            times = np.sort(np.asarray(r.spike_times), axis=1)
            same = np.asarray(r.n_spikes) == np.asarray(ref.n_spikes)
            both = np.isfinite(ref_times) & np.isfinite(times) & same[:, None]
            err = np.abs(times - ref_times)[both]
            steps = np.asarray(r.n_steps)
            error = (f"spike-time error max {err.max():.1e} median {np.median(err):.1e} ms "
                     f"over {err.size} spikes" if err.size else "no spikes to compare")
            print(f"{model} {solver} {tol:g}: steps max {steps.max()} mean {steps.mean():.0f}; "
                  f"forward {args.batch / seconds:.0f} samples/s; {error}; "
                  f"{int((~same).sum())} samples with another spike count", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
