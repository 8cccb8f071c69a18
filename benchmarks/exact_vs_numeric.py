"""Exact (closed-form) vs numeric integration: throughput and agreement.

    python benchmarks/exact_vs_numeric.py [--x64] [--batch 32] [--configs yy-lif-li yy-lif-lif mnist-lif-lif]

For each network the same parameters and inputs are run through the event loop
twice in one process -- with ``SimOptions(integrator="auto")`` (the default:
LIF / LI states advanced by their closed form, spike times by root finding on
it, no ODE solver; see :mod:`eventax_dsl.sim.exact`) and with
``integrator="numeric"`` (Tsit5 with the default tolerances between events) --
and reports, after compilation,

- forward + backward samples/s: ``jax.value_and_grad`` of a classification loss
  w.r.t. every trainable leaf, ``vmap`` over the batch (median of ``--repeats``);
- forward samples/s (``spikes`` for the whole batch);
- agreement: the spike counts and ids of the two paths, the largest difference
  between corresponding spike times (ms), and for an LI read-out the largest
  difference of the recorded voltages.

Networks (random initial weights, real data):

- ``yy-lif-li``:  Yin-Yang, 5-50-3, hidden LIF, LI read-out, loss on the maximum
  read-out voltage (the EventProp Yin-Yang setup);
- ``yy-lif-lif``: Yin-Yang, 5-50-3, LIF output, time-to-first-spike loss;
- ``mnist-lif-lif``: MNIST (latency code, 20 ms), 784-200-10, LIF output, TTFS loss;
- ``mnist-lif-li``: MNIST, 784-200-10, LI read-out.

MNIST is read from ``../shared/datasets/mnist`` (or ``--mnist DIR``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

from eventax_dsl.sim.bench import time_call  # noqa: E402


def _data(name, batch, mnist_dir):
    import numpy as np  # noqa: PLC0415

    from eventax_dsl import datasets  # noqa: PLC0415

    if name.startswith("yy"):
        (x, y), _, _ = datasets.yinyang_splits()
        return datasets.encode_yinyang(x[:batch], t_max=30.0), y[:batch], 5, 50, 3, 60.0
    images, labels = datasets.load_mnist(mnist_dir, "test", flatten=True)
    times = datasets.encode_latency(images[:batch], t_max=20.0, dtype=np.float64)
    return times, labels[:batch], 784, 200, 10, 40.0


def run(name, args):
    import equinox as eqx  # noqa: PLC0415
    import jax  # noqa: PLC0415
    import jax.numpy as jnp  # noqa: PLC0415
    import jax.random as jr  # noqa: PLC0415
    import numpy as np  # noqa: PLC0415

    import eventax_dsl  # noqa: PLC0415
    from eventax_dsl.sim import FeedForward, SimOptions, normal_init, trainable  # noqa: PLC0415

    LIF = eventax_dsl.load(ROOT / "models" / "lif.neuron")
    LI = eventax_dsl.load(ROOT / "models" / "li.neuron")
    x, y, n_in, n_hidden, n_out, t_end = _data(name, args.batch, args.mnist)
    dtype = jnp.result_type(float)
    x = jnp.asarray(x, dtype)
    y = jnp.asarray(y)
    readout = name.endswith("-li")
    out_model = LI if readout else LIF
    inits = [normal_init(4.0, 2.0) if n_in == 5 else normal_init(1.0, 3.0), normal_init(2.0, 2.0)]
    net = FeedForward([LIF, out_model], [n_hidden, n_out], in_size=n_in, key=jr.key(0),
                      weight_init=inits, dtype=dtype)
    params, static = eqx.partition(net, trainable(net))
    obs = jnp.linspace(1.0, t_end, 24, dtype=dtype)

    def loss_fn(options):
        def loss(p, xs, ys):
            n = eqx.combine(p, static)
            if readout:
                v = jax.vmap(lambda x: n.state_at(x, obs, options=options)["v"])(xs)  # (B, T, out)
                logits = jnp.max(v, axis=1)
            else:
                t = jax.vmap(lambda x: n.ttfs(x, t_end, options=options))(xs)
                logits = -jnp.where(jnp.isfinite(t), t, t_end) / 5.0
            return -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(ys.shape[0]), ys])
        return loss

    results = {}
    for integrator in ("auto", "numeric"):
        options = SimOptions(integrator=integrator, max_spikes=args.max_spikes)
        grad = jax.jit(jax.value_and_grad(loss_fn(options)))
        fwd = jax.jit(lambda p, xs, o=options: jax.vmap(
            lambda x: eqx.combine(p, static).spikes(x, t_end, options=o))(xs))
        c_g, t_g = time_call(grad, params, x, y, repeats=args.repeats) if args.grad else (float("nan"),) * 2
        c_f, t_f = time_call(fwd, params, x, repeats=args.repeats)
        spikes = fwd(params, x)
        trace = None
        if readout:
            trace = jax.jit(lambda p, xs, o=options: jax.vmap(
                lambda x: eqx.combine(p, static).state_at(x, obs, options=o)["v"])(xs))(params, x)
        loss = grad(params, x, y)[0] if args.grad else jax.jit(loss_fn(options))(params, x, y)
        results[integrator] = dict(t_g=t_g, t_f=t_f, c_g=c_g, c_f=c_f, spikes=spikes, trace=trace,
                                   loss=float(loss))
    a, b = results["auto"], results["numeric"]
    if args.agree_rtol is not None:  # agreement against a tighter numeric run (forward only)
        o = SimOptions(integrator="numeric", rtol=args.agree_rtol, atol=args.agree_rtol,
                       max_spikes=args.max_spikes)
        b = dict(b, spikes=jax.jit(jax.vmap(lambda x: eqx.combine(params, static).spikes(
            x, t_end, options=o)))(x))
        if readout:
            b["trace"] = jax.jit(jax.vmap(lambda x: eqx.combine(params, static).state_at(
                x, obs, options=o)["v"]))(x)
    ta, ia, na = (np.asarray(v) for v in a["spikes"])
    tb, ib, nb = (np.asarray(v) for v in b["spikes"])
    # a sample agrees if both paths give the same neurons spiking in the same order
    agree = np.array([na[s] == nb[s] and np.array_equal(ia[s], ib[s]) for s in range(len(na))])
    both = np.isfinite(ta) & np.isfinite(tb) & agree[:, None]
    dt = float(np.max(np.abs(np.where(both, ta, 0.0) - np.where(both, tb, 0.0)), initial=0.0))
    same = bool(agree.all())
    prec = "float64" if dtype == jnp.float64 else "float32"
    print(f"\n{name}  ({n_in}-{n_hidden}-{n_out}, LIF -> {'LI' if readout else 'LIF'}, {prec}, "
          f"batch {args.batch}, {float(np.mean(na)):.0f} spikes/sample)")
    for k, r in results.items():
        grad = (f"forward+backward {args.batch / r['t_g']:9.1f} samples/s "
                f"({r['t_g'] * 1e3:8.1f} ms, compile {r['c_g']:5.1f} s)   " if args.grad else "")
        print(f"  {k:8s} {grad}forward {args.batch / r['t_f']:9.1f} samples/s ({r['t_f'] * 1e3:8.1f} ms)"
              f"   loss {r['loss']:.6f}")
    ra, rb = results["auto"], results["numeric"]
    grad = f"forward+backward {rb['t_g'] / ra['t_g']:.1f}x, " if args.grad else ""
    print(f"  speed-up exact/numeric: {grad}forward {rb['t_f'] / ra['t_f']:.1f}x")
    against = "numeric" if args.agree_rtol is None else f"numeric at rtol=atol={args.agree_rtol:g}"
    line = (f"  vs {against}: identical spike trains (neurons, order) in {int(agree.sum())}/{len(agree)} "
            f"samples; max spike-time difference {dt:.2e} ms")
    if not same:
        s = int(np.argmin(agree))
        k = int(np.argmax(ia[s] != ib[s])) if na[s] == nb[s] else int(min(na[s], nb[s]))
        line += (f"\n  (first difference: sample {s}, spike #{k}: exact {ta[s][k]:.4f} ms neuron {ia[s][k]}, "
                 f"numeric {tb[s][k]:.4f} ms neuron {ib[s][k]} -- typically a brief threshold crossing "
                 "one path misses; compare with --agree-rtol 1e-12 --x64)")
    if readout:
        dv = np.abs(np.asarray(a["trace"]) - np.asarray(b["trace"]))[agree]
        line += f"; max read-out voltage difference {float(np.max(dv, initial=0.0)):.2e} (same samples)"
    print(line)
    return dict(name=name, speedup_grad=rb["t_g"] / ra["t_g"], speedup_fwd=rb["t_f"] / ra["t_f"],
                max_dt=dt, same=same)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--x64", action="store_true", help="float64 (default float32)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-spikes", type=int, default=None, dest="max_spikes")
    parser.add_argument("--configs", nargs="+", default=["yy-lif-li", "yy-lif-lif", "mnist-lif-lif"],
                        choices=["yy-lif-li", "yy-lif-lif", "mnist-lif-lif", "mnist-lif-li"])
    parser.add_argument("--no-grad", action="store_false", dest="grad",
                        help="skip the forward+backward timing (agreement and forward only)")
    parser.add_argument("--agree-rtol", type=float, default=None, dest="agree_rtol",
                        help="also run the numeric path at this tolerance and compare with that")
    parser.add_argument("--mnist", default=str(ROOT.parent / "shared" / "datasets" / "mnist"))
    args = parser.parse_args(argv)

    import jax  # noqa: PLC0415

    jax.config.update("jax_enable_x64", args.x64)
    sys.path.insert(0, str(ROOT))
    print(f"eventax-dsl exact vs numeric integration; JAX {jax.__version__} on "
          f"{jax.devices()[0].platform} ({os.cpu_count()} CPUs visible)")
    for name in args.configs:
        run(name, args)


if __name__ == "__main__":
    main()
