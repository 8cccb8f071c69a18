"""What the quadrature states of a loss cost: only the integrals it reads vs all three.

    python benchmarks/quadrature_cost.py [--batch 32] [--repeats 5] [--configs qif-li:exp-integral ...]

Each loss reads only some of the quadrature states that
:func:`eventax_dsl.train.quadrature.with_quadrature` can add (``max``: none, only
``v_dot``; ``integral`` and TTFS's silent-target term: ``q_int``; ``exp-integral``:
``q_w`` and ``q_exp``), and the trainer asks for exactly those
(:attr:`eventax_dsl.train.Readout.integrals`). This script measures what that saves:
for each configuration the same Yin-Yang 5-50-3 network (random calibrated-scale
weights, the first ``--batch`` training samples) is built twice in one process, with
the states the loss reads and with all three, and the forward+backward time of
one training batch (``jax.value_and_grad`` of the loss w.r.t. every trainable leaf,
``vmap`` over the batch; median of ``--repeats`` calls after compilation, the two
variants called alternately) is reported for both, with their ratio and the largest loss difference.

Configurations ``HIDDEN-READOUT:LOSS``: ``qif-li:exp-integral``, ``qif-li:integral``,
``qif-li:max``, ``lif-li:exp-integral``, ``qif-qif:ttfs``, ``lif-lif:ttfs`` (TTFS with
the silent-target term, the trainer's default).
"""

from __future__ import annotations

import argparse
import sys
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from eventax_dsl.sim.bench import time_alternately, time_call  # noqa: E402

CONFIGS = ("qif-li:exp-integral", "qif-li:integral", "qif-li:max", "lif-li:exp-integral",
           "qif-qif:ttfs", "lif-lif:ttfs")


def run(config: str, args) -> dict:
    import equinox as eqx  # noqa: PLC0415
    import jax  # noqa: PLC0415
    import jax.numpy as jnp  # noqa: PLC0415
    import numpy as np  # noqa: PLC0415

    from eventax_dsl.sim import SimOptions, trainable  # noqa: PLC0415
    from eventax_dsl.train import Readout, load_model  # noqa: PLC0415
    from eventax_dsl.train.build import build_network, init_key  # noqa: PLC0415
    from eventax_dsl.train.engine import batch_loss  # noqa: PLC0415
    from eventax_dsl.train.quadrature import INTEGRALS, attach_quadrature  # noqa: PLC0415
    from eventax_dsl.train.tasks import load_task  # noqa: PLC0415

    models, loss = config.split(":")
    hidden, out = models.split("-")
    readout = Readout(kind=loss, t_end=50.0, silent_push=10.0 if loss == "ttfs" else 0.0)
    data = load_task("yinyang", sizes=(args.batch, 1, 1)).train
    x, y, t0 = (jnp.asarray(a) for a in (data.x, data.y, data.t0))
    base = build_network("yinyang", load_model(hidden), load_model(out), (50,), 5, 3,
                         key=init_key(0), dtype=jnp.float32, readout=None)
    options = SimOptions()
    result = {"config": config}
    calls = {}
    for label, integrals in (("reads", readout.integrals), ("all", INTEGRALS)):
        net = attach_quadrature(base, readout.quadrature, readout.tau, integrals)
        params, static = eqx.partition(net, trainable(net))
        fb = jax.jit(jax.value_and_grad(
            lambda p, static=static: batch_loss(p, static, x, y, t0, readout, options)[0]))
        (value, _), compile_s, _ = time_call(fb, params, repeats=0, with_output=True)
        calls[label] = (fb, params)
        result[label] = {"states": type(net.populations[net.output]).QUAD_STATES,
                         "compile_s": compile_s, "loss": float(value)}
    med = time_alternately({label: (lambda i, c=c: partial(*c)) for label, c in calls.items()},
                           args.repeats)
    for label in calls:
        result[label]["fb_s"] = med[label]
    result["speedup"] = result["all"]["fb_s"] / result["reads"]["fb_s"]
    result["loss_diff"] = float(np.abs(result["all"]["loss"] - result["reads"]["loss"]))
    return result


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=CONFIGS)
    args = p.parse_args(argv)
    head = (f"{'config':22} {'states read':18} {'fb s (read)':>12} {'fb s (all 3)':>13} "
            f"{'speed-up':>9} {'|loss diff|':>12}")
    print(head)
    print("-" * len(head))
    for config in args.configs:
        r = run(config, args)
        states = ",".join(r["reads"]["states"]) or "(v_dot only)"
        print(f"{config:22} {states:18} {r['reads']['fb_s']:12.3f} {r['all']['fb_s']:13.3f} "
              f"{r['speedup']:9.2f} {r['loss_diff']:12.2e}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
