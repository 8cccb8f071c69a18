"""Throughput benchmark: ``python -m eventax_dsl.sim.bench [--x64] [--batch 32]``.

Builds a ``5-20-3`` feed-forward network from the reference models in
``tests/models_handwritten.py`` (hidden QIF or LIF, output LIF), draws a batch of
random input spike times in ``[0, 20)`` ms and measures, after compilation,

- forward: ``jax.vmap(net.ttfs)`` over the batch (``t_max = 50`` ms);
- forward + backward: ``jax.value_and_grad`` of a TTFS loss w.r.t. the
  trainable leaves (:func:`~eventax_dsl.sim.trainable`).

Each timing is the median wall time of ``--repeats`` calls of the jitted
function (``block_until_ready``), reported as samples per second.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time


def _models():
    here = os.path.dirname(os.path.abspath(__file__))
    tests = os.path.join(here, "..", "..", "tests")
    sys.path.insert(0, os.path.abspath(tests))
    import models_handwritten as mh  # noqa: PLC0415

    return mh


def time_call(fn, *args, repeats, with_output=False):
    """``(compile seconds, median seconds)``: the first call (compilation), then the
    median wall time of ``repeats`` further calls (``block_until_ready``; ``nan``
    when ``repeats`` is 0). ``with_output=True`` prepends the first call's output."""
    import jax  # noqa: PLC0415

    t0 = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    compile_s = time.perf_counter() - t0
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        runs.append(time.perf_counter() - t0)
    median = statistics.median(runs) if runs else float("nan")
    return (out, compile_s, median) if with_output else (compile_s, median)


def time_alternately(prepare, repeats, *, warmup=0):
    """Median wall seconds of several variants timed in turn: ``{label: seconds}``.

    Timing the variants alternately (A, B, A, B, ...) rather than one after the
    other lets load from elsewhere on the machine hit them alike, so their ratio
    holds even where the absolute times drift.

    ``prepare``: ``{label: make}``, where ``make(i)`` returns the zero-argument
    call to time at repetition ``i`` (work that should not be timed, such as
    moving a batch to the device, goes in ``make``). Repetitions ``i < warmup``
    run untimed (compilation); ``repeats`` timed ones follow.
    """
    import jax  # noqa: PLC0415

    runs = {label: [] for label in prepare}
    for i in range(warmup + repeats):
        for label, make in prepare.items():
            call = make(i)
            t0 = time.perf_counter()
            jax.block_until_ready(call())
            if i >= warmup:
                runs[label].append(time.perf_counter() - t0)
    return {label: statistics.median(r) if r else float("nan") for label, r in runs.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--x64", action="store_true", help="float64 (default float32)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--hidden", nargs="+", default=["QIF", "LIF"])
    parser.add_argument("--loop", default="checkpointed", choices=["checkpointed", "scan"])
    args = parser.parse_args(argv)

    import jax  # noqa: PLC0415

    jax.config.update("jax_enable_x64", args.x64)
    import equinox as eqx  # noqa: PLC0415
    import jax.numpy as jnp  # noqa: PLC0415
    import jax.random as jr  # noqa: PLC0415

    from eventax_dsl.sim import FeedForward, trainable  # noqa: PLC0415

    mh = _models()
    t_max = 50.0
    xs = jr.uniform(jr.key(1), (args.batch, 5), minval=0.0, maxval=20.0)
    for hidden in args.hidden:
        net = FeedForward([getattr(mh, hidden), mh.LIF], [20, 3], in_size=5, key=jr.key(0))
        params, static = eqx.partition(net, trainable(net))

        @jax.jit
        def forward(p, xs):
            n = eqx.combine(p, static)
            return jax.vmap(lambda x: n.ttfs(x, t_max, loop=args.loop))(xs)

        def loss(p, xs):
            t = forward(p, xs)
            return jnp.mean(jnp.where(jnp.isfinite(t), t, t_max))

        grad = jax.jit(jax.value_and_grad(loss))
        c_f, t_f = time_call(forward, params, xs, repeats=args.repeats)
        c_g, t_g = time_call(grad, params, xs, repeats=args.repeats)
        frac = float(jnp.mean(jnp.isfinite(forward(params, xs))))
        dtype = "float64" if args.x64 else "float32"
        print(
            f"5-20-3 {hidden}->LIF {dtype} batch {args.batch} ({args.loop}): "
            f"forward {args.batch / t_f:8.0f} samples/s ({t_f * 1e3:.1f} ms, compile {c_f:.1f} s); "
            f"forward+backward {args.batch / t_g:8.0f} samples/s ({t_g * 1e3:.1f} ms, "
            f"compile {c_g:.1f} s); outputs spiking {frac:.0%}"
        )


if __name__ == "__main__":
    main()
