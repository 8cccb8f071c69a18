"""What carrying the solver's step size across events (``SimOptions.carry_step``) gains.

    python benchmarks/carry_step.py [--model qif] [--layers 5 20 3] [--batch 256] [--gain 2]
                                    [--x64] [--repeats 5]

``carry_step`` acts only with ``stepping="solve"`` (one ``diffeqsolve`` per interval
between events), so both variants run that way. Every solve between two events starts either with Diffrax's initial-step heuristic
(``carry_step=False``: two extra vector-field evaluations, and a small first step that
the controller then has to grow again) or with the mean accepted step of the previous
solve (``carry_step=True``, the default). Both are timed alternately in one process on
the workload of ``benchmarks/throughput.py`` (Yin-Yang input, a feed-forward network of
a library model, time to first spike with ``t_max = 60`` ms, forward and forward +
backward of a TTFS cross-entropy), with the input weights multiplied by ``--gain`` so
that the outputs spike. Printed per variant: median samples/s, the mean number of
solver steps per sample (``SimResult.n_steps``), and the output spike-time error
against a float64 run at ``rtol = atol = 1e-12`` (root tolerance 1e-13) made in a
separate process, with the number of outputs that spike in one run only
(``throughput._error``); then the speed-ups.

The closed-form models (``lif``) take no solver steps: nothing changes for them.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)


def _network(args):
    import equinox as eqx  # noqa: PLC0415
    import jax.numpy as jnp  # noqa: PLC0415

    import throughput  # noqa: PLC0415

    net = throughput._build(args.model, args.layers, key=0)
    net = eqx.tree_at(lambda n: n.weights, net, tuple(
        {k: v * args.gain for k, v in w.items()} for w in net.weights))
    xs = jnp.asarray(throughput._inputs(args.batch), jnp.result_type(float))
    return net, xs, throughput


def reference(args, path: str) -> None:
    """Float64 tight-tolerance output spike times, saved to ``path`` (.npy)."""
    import jax  # noqa: PLC0415

    jax.config.update("jax_enable_x64", True)
    import numpy as np  # noqa: PLC0415

    net, xs, tp = _network(args)
    t = jax.jit(jax.vmap(lambda x: net.ttfs(x, tp.T_MAX, rtol=1e-12, atol=1e-12,
                                            root_tol=1e-13)))(xs)
    np.save(path, np.asarray(t))


def measure(args, ref_path: str) -> None:
    import jax  # noqa: PLC0415

    jax.config.update("jax_enable_x64", args.x64)
    import equinox as eqx  # noqa: PLC0415
    import jax.numpy as jnp  # noqa: PLC0415
    import numpy as np  # noqa: PLC0415

    from eventax_dsl.sim import simulate, trainable  # noqa: PLC0415
    from eventax_dsl.sim.bench import time_alternately  # noqa: PLC0415

    net, xs, tp = _network(args)
    labels = jnp.arange(args.batch) % args.layers[-1]
    params, static = eqx.partition(net, trainable(net))
    ref = np.load(ref_path)

    def variant(carry):
        def forward(p, xs):
            n = eqx.combine(p, static)
            return jax.vmap(lambda x: n.ttfs(x, tp.T_MAX, stepping="solve", carry_step=carry))(xs)

        def loss(p, xs, labels):
            return tp.ttfs_loss(forward(p, xs), labels)

        steps = jax.jit(jax.vmap(lambda x: simulate(
            net, x, tp.T_MAX, stop_when_output_spiked=True, record_spikes=False,
            stepping="solve", carry_step=carry).n_steps))
        return jax.jit(forward), jax.jit(jax.value_and_grad(loss)), steps

    fns = {carry: variant(carry) for carry in (False, True)}
    rows = {}
    for carry, (fwd, _, steps) in fns.items():
        (err_max, err_median), mismatch = tp._error(fwd(params, xs), ref)
        rows[carry] = dict(err_max=err_max, err_median=err_median, mismatch=mismatch,
                           steps=float(np.mean(np.asarray(steps(xs)))))
    fwd_s = time_alternately({c: (lambda i, f=f: (lambda: f[0](params, xs)))
                              for c, f in fns.items()}, args.repeats, warmup=1)
    bwd_s = time_alternately({c: (lambda i, f=f: (lambda: f[1](params, xs, labels)))
                              for c, f in fns.items()}, args.repeats, warmup=1)
    dtype = "float64" if args.x64 else "float32"
    print(f"{args.model} {'-'.join(map(str, args.layers))}, batch {args.batch}, {dtype}, "
          f"gain {args.gain:g}; {100 * np.mean(np.isfinite(ref)):.0f} % of the outputs spike")
    print(f"{'carry_step':>10} {'fwd/s':>9} {'fwd+bwd/s':>10} {'steps':>8} "
          f"{'err max (ms)':>13} {'err median':>11} {'mismatches':>11}")
    for carry in (False, True):
        r = rows[carry]
        print(f"{str(carry):>10} {args.batch / fwd_s[carry]:9.1f} {args.batch / bwd_s[carry]:10.1f} "
              f"{r['steps']:8.1f} {r['err_max']:13.2e} {r['err_median']:11.2e} "
              f"{r['mismatch']:11d}")
    print(f"speed-up with carry_step: forward {fwd_s[False] / fwd_s[True]:.2f}x, "
          f"forward+backward {bwd_s[False] / bwd_s[True]:.2f}x, solver steps "
          f"{rows[False]['steps'] / max(rows[True]['steps'], 1e-9):.2f}x fewer")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="qif")
    p.add_argument("--layers", type=int, nargs="+", default=[20, 3],
                   help="layer sizes after the 5 inputs")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--gain", type=float, default=2.0, help="factor on the initial weights")
    p.add_argument("--x64", action="store_true")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--reference-to", help=argparse.SUPPRESS)  # the float64 worker
    args = p.parse_args(argv)
    if args.reference_to:
        reference(args, args.reference_to)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "reference.npy")
        argv = list(argv if argv is not None else sys.argv[1:])
        subprocess.run([sys.executable, os.path.abspath(__file__), *argv, "--reference-to", path],
                       check=True)
        measure(args, path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
