"""One solve per event against one solver step per loop iteration (``SimOptions.stepping``).

    python benchmarks/stepping.py [--x64] [--batch 256] [--repeats 3]

The throughput workload (``benchmarks/throughput.py``: QIF 5-20-3, Yin-Yang input,
time to first spike, ``t_max`` 60 ms), with ``stepping="solve"`` and
``stepping="single"`` (the default), each at its default tolerances, in one
process on the same network and inputs. For
each: forward and forward+backward samples/s (median of ``--repeats`` calls after
compilation), the largest spike-time error against a float64 run at
``rtol = atol = 1e-12`` (one solve per event), and how many outputs spike in one
setting and not in the reference. A third row runs ``"solve"`` on ``--batch``
copies of one sample
(the mean over 8 samples): what the batch would cost if ``jax.vmap`` had no
slowest sample to wait for.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--x64", action="store_true", help="float64 (default float32)")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)

    import jax  # noqa: PLC0415

    jax.config.update("jax_enable_x64", args.x64)
    import equinox as eqx  # noqa: PLC0415
    import jax.numpy as jnp  # noqa: PLC0415
    import numpy as np  # noqa: PLC0415

    import throughput as tp  # noqa: PLC0415
    from eventax_dsl.sim import SimOptions, trainable  # noqa: PLC0415

    net = tp._build("qif", [20, 3], key=0)
    xs = jnp.asarray(tp._inputs(args.batch), jnp.result_type(float))
    labels = jnp.arange(args.batch) % 3
    params, static = eqx.partition(net, trainable(net))
    with jax.enable_x64(True):
        tight = SimOptions(rtol=1e-12, atol=1e-12, root_tol=1e-13, max_solver_steps=100000,
                           stepping="solve")
        ref_net = tp._build("qif", [20, 3], key=0)
        ref = np.asarray(jax.jit(jax.vmap(lambda x: ref_net.ttfs(x, tp.T_MAX, options=tight)))(
            jnp.asarray(tp._inputs(args.batch), jnp.float64)))

    def timed(f, *a):
        jax.block_until_ready(f(*a))
        ts = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            jax.block_until_ready(f(*a))
            ts.append(time.perf_counter() - t)
        return float(np.median(ts))

    def programs(stepping):
        options = SimOptions(stepping=stepping)

        def forward(p_, x_):
            n = eqx.combine(p_, static)
            return jax.vmap(lambda x: n.ttfs(x, tp.T_MAX, options=options))(x_)

        loss = jax.value_and_grad(lambda p_, x_, y_: tp.ttfs_loss(forward(p_, x_), y_))
        return jax.jit(forward), jax.jit(loss)

    print(f"QIF 5-20-3, batch {args.batch}, {'float64' if args.x64 else 'float32'}")
    print(f"{'stepping':28} {'forward/s':>10} {'fwd+bwd/s':>10} {'error max (ms)':>15} {'mismatches':>11}")
    for stepping in ("solve", "single"):
        fwd, grad = programs(stepping)
        out = np.asarray(fwd(params, xs))
        both = np.isfinite(out) & np.isfinite(ref)
        err = float(np.max(np.abs(out[both] - ref[both]), initial=0.0))
        mismatch = int(np.sum(np.isfinite(out) != np.isfinite(ref)))
        tf, tb = timed(fwd, params, xs), timed(grad, params, xs, labels)
        print(f"{stepping:28} {args.batch / tf:10.0f} {args.batch / tb:10.0f} {err:15.2e} {mismatch:11d}",
              flush=True)
    fwd, grad = programs("solve")
    copies = [jnp.broadcast_to(xs[k], xs.shape) for k in range(8)]
    tf = np.mean([timed(fwd, params, c) for c in copies])
    tb = np.mean([timed(grad, params, c, labels) for c in copies])
    print(f"{'solve, copies of one sample':28} {args.batch / tf:10.0f} {args.batch / tb:10.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
