"""Simulator throughput and spike-time accuracy, as one table.

    python benchmarks/throughput.py                 # the full table (~20-30 min on 2 cores)
    python benchmarks/throughput.py --quick         # QIF 5-20-3, batch 256, float32 only
    python benchmarks/throughput.py --devices 2     # data parallel over 2 devices (threads)
    python benchmarks/throughput.py --devices 2 --parallel gspmd   # ... one program spanning them

Workload: Yin-Yang input (``datasets.yinyang`` encoded with
``datasets.encode_yinyang``: 5 channels, one spike each in [0, 30] ms),
feed-forward networks of compiled library models (``models/qif.neuron``,
``models/lif.neuron``; hidden and output layer of the same model), time to
first spike of the outputs with ``t_max = 60`` ms.

For every configuration (model, architecture, batch, precision) it measures,
after compilation, the median wall time of ``--repeats`` calls of

- forward: ``jax.jit(jax.vmap(net.ttfs))`` on one batch;
- forward + backward: ``jax.value_and_grad`` of a time-to-first-spike
  cross-entropy (``softmax(-t / tau0)``, tau0 = 5 ms, ``inf`` replaced by
  ``t_max`` first) w.r.t. all trainable leaves;

plus the compile times, and the spike-time error: the largest
``|t - t_ref|`` (ms) over output first-spike times, against a float64 run with
tight tolerances (``rtol = atol = 1e-12``, root tolerance ``1e-13``) of the same
network on the same inputs, and the largest relative error ``|t - t_ref| / t_ref``.
``spiking`` is the fraction of finite output times
(a mismatch in which outputs spike counts as an infinite error).

Each precision runs in its own process (``jax_enable_x64`` is process-wide),
so the float64 reference, the float32 and the float64 rows come from separate
workers that share the network weights and inputs through a temporary file.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
T_MAX = 60.0
TAU0 = 5.0
# Mean, std (before the 1/sqrt(fan_in) scaling) of the initial weights: chosen so
# that at initialisation most hidden and output neurons spike a few times.
INIT = {"qif": (1.5, 1.0), "lif": (4.0, 2.0)}


# ---------------------------------------------------------------- worker side
def _build(model: str, layers, key: int):
    import jax.random as jr  # noqa: PLC0415

    import eventax_dsl  # noqa: PLC0415
    from eventax_dsl.sim import FeedForward, normal_init  # noqa: PLC0415

    import jax.numpy as jnp  # noqa: PLC0415

    cls = eventax_dsl.load(os.path.join(ROOT, "models", f"{model}.neuron"))
    draw = normal_init(*INIT[model])

    def init(k, shape, dtype):
        # Drawn in float32 whatever the precision, so that every worker process
        # builds the same network.
        return draw(k, shape, jnp.float32).astype(dtype)

    return FeedForward(cls, layers=layers, in_size=5, key=jr.key(key), weight_init=init)


def _inputs(batch: int):
    import numpy as np  # noqa: PLC0415

    from eventax_dsl import datasets  # noqa: PLC0415

    x, _ = datasets.yinyang(batch, seed=42)
    # Rounded to float32 so that every precision sees exactly the same inputs.
    return np.asarray(datasets.encode_yinyang(x), np.float32).astype(np.float64)


def ttfs_loss(times, labels):
    """The benchmarks' time-to-first-spike cross-entropy: ``softmax(-t / TAU0)`` over
    the outputs' first spike times ``(batch, n_out)``, ``inf`` replaced by ``T_MAX``
    first (so that no NaN reaches the gradient)."""
    import jax  # noqa: PLC0415
    import jax.numpy as jnp  # noqa: PLC0415

    t = jnp.where(jnp.isfinite(times), times, T_MAX)
    logp = jax.nn.log_softmax(-t / TAU0, axis=-1)
    return -jnp.mean(jnp.take_along_axis(logp, labels[:, None], axis=-1))


def _median_time(fn, *args, repeats: int):
    """``(first output, compile s, median s)``, see :func:`eventax_dsl.sim.bench.time_call`."""
    from eventax_dsl.sim.bench import time_call  # noqa: PLC0415

    return time_call(fn, *args, repeats=repeats, with_output=True)


def worker(spec: dict) -> list[dict]:
    """Run the configurations of one precision; return one dict per row."""
    import jax  # noqa: PLC0415

    jax.config.update("jax_enable_x64", spec["x64"])
    from eventax_dsl.sim.parallel import DataParallel, request_cpu_devices  # noqa: PLC0415

    if spec["devices"] > 1:
        request_cpu_devices(spec["devices"])  # before anything starts JAX's backends
    import equinox as eqx  # noqa: PLC0415
    import jax.numpy as jnp  # noqa: PLC0415
    import numpy as np  # noqa: PLC0415

    from eventax_dsl.sim import trainable  # noqa: PLC0415

    dp = DataParallel(spec["devices"]) if spec["devices"] > 1 else None
    rows = []
    for cfg in spec["configs"]:
        net = _build(cfg["model"], cfg["layers"], key=0)
        xs = jnp.asarray(_inputs(cfg["batch"]), jnp.result_type(float))
        labels = jnp.arange(cfg["batch"]) % cfg["layers"][-1]
        opts = dict(spec.get("options", {}))
        params, static = eqx.partition(net, trainable(net))

        def forward(p, xs):
            n = eqx.combine(p, static)
            return jax.vmap(lambda x: n.ttfs(x, T_MAX, **opts))(xs)

        def loss(p, xs, labels):
            return ttfs_loss(forward(p, xs), labels)

        fwd = jax.jit(forward)
        grad = jax.jit(jax.value_and_grad(loss))
        if dp is not None and spec["parallel"] == "gspmd":
            params, xs, labels = dp.replicate(params), dp.shard(xs), dp.shard(labels)
        elif dp is not None:  # one program per device, side by side (DataParallel.run)
            copies, parts = dp.copies(params), dp.split((xs, labels))
            one_fwd, one_grad = fwd, grad
            fwd = lambda *_: dp.concat(dp.run(one_fwd, copies, [x for x, _ in parts]))  # noqa: E731
            grad = lambda *_: dp.mean(dp.run(one_grad, copies, *zip(*parts)))  # noqa: E731
        devices = spec["devices"] if dp is None else f"{spec['devices']} ({spec['parallel']})"
        row = dict(cfg, dtype="float64" if spec["x64"] else "float32", devices=devices)
        if spec.get("reference_only"):
            t, _, _ = _median_time(fwd, params, xs, repeats=0)
            row["times"] = np.asarray(t).tolist()
        else:
            t, row["compile_fwd_s"], row["fwd_s"] = _median_time(
                fwd, params, xs, repeats=spec["repeats"]
            )
            if not spec.get("forward_only"):
                _, row["compile_grad_s"], row["grad_s"] = _median_time(
                    grad, params, xs, labels, repeats=spec["repeats"]
                )
            row["times"] = np.asarray(t).tolist()
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "times"}), file=sys.stderr, flush=True)
    return rows


# ---------------------------------------------------------------- driver side
def _run_worker(spec: dict) -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "spec.json")
        with open(path, "w") as f:
            json.dump(spec, f)
        out = os.path.join(tmp, "rows.json")
        subprocess.run(
            [sys.executable, os.path.abspath(__file__), "--worker", path, out], check=True
        )
        with open(out) as f:
            return json.load(f)


def _error(times, ref) -> tuple[tuple[float, float], int]:
    """``((max, median) of |t - t_ref| in ms, mismatches)`` over outputs that spike in
    both runs; mismatches: outputs that spike in one run only (e.g. a spike within the
    error of t_max)."""
    d, mismatch = _deviations(times, ref)
    return (float(d.max()), float(np.median(d))) if d.size else (0.0, 0.0), mismatch


def _relative_error(times, ref) -> float:
    """The largest ``|t - t_ref| / t_ref`` over outputs that spike in both runs."""
    d, _ = _deviations(times, ref, relative=True)
    return float(d.max()) if d.size else 0.0


def _deviations(times, ref, relative: bool = False):
    t, r = np.asarray(times, float), np.asarray(ref, float)
    both = np.isfinite(t) & np.isfinite(r)
    mismatch = int(np.sum(np.isfinite(t) != np.isfinite(r)))
    d = np.abs(t[both] - r[both])
    return (d / r[both] if relative else d), mismatch


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="QIF 5-20-3, batch 256, float32")
    parser.add_argument("--devices", type=int, default=1, help="data-parallel devices")
    parser.add_argument(
        "--parallel", choices=["threads", "gspmd"], default="threads",
        help="with --devices > 1: one program per device side by side (DataParallel.run, "
             "the default) or one program spanning the devices (DataParallel.shard)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", nargs="+", default=["qif", "lif"], choices=sorted(INIT))
    parser.add_argument("--batches", nargs="+", type=int, default=[32, 256])
    parser.add_argument("--dtypes", nargs="+", default=["float32", "float64"])
    parser.add_argument("--forward-only", action="store_true")
    parser.add_argument(
        "--options", default="{}", help='simulator options as JSON, e.g. \'{"rtol": 1e-6}\''
    )
    parser.add_argument("--json", help="also write the rows to this JSON file")
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        with open(args.worker[0]) as f:
            spec = json.load(f)
        rows = worker(spec)
        with open(args.worker[1], "w") as f:
            json.dump(rows, f)
        return

    if args.quick:
        configs = [dict(model="qif", layers=[20, 3], batch=256)]
        dtypes = ["float32"]
    else:
        configs = []
        for model in args.models:
            archs = [[20, 3], [50, 3]] if model == "qif" else [[50, 3]]
            for layers in archs:
                for batch in args.batches:
                    configs.append(dict(model=model, layers=layers, batch=batch))
        dtypes = args.dtypes
    reference = _run_worker(
        dict(
            x64=True,
            devices=1,
            configs=configs,
            reference_only=True,
            repeats=0,
            # one solve per event: the reference does not share the stepping under test
            options=dict(rtol=1e-12, atol=1e-12, root_tol=1e-13, max_solver_steps=100000,
                         stepping="solve"),
        ),
    )
    rows = []
    for dtype in dtypes:
        rows += _run_worker(
            dict(
                x64=dtype == "float64",
                devices=args.devices,
                parallel=args.parallel,
                configs=configs,
                repeats=args.repeats,
                forward_only=args.forward_only,
                options=json.loads(args.options),
            ),
        )
    for row in rows:
        ref = next(r for r in reference if all(r[k] == row[k] for k in ("model", "layers", "batch")))
        row["spike_error_ms"], row["spike_mismatch"] = _error(row["times"], ref["times"])
        row["spike_error_rel"] = _relative_error(row["times"], ref["times"])
        row["spiking"] = sum(t < float("inf") for ts in ref["times"] for t in ts) / max(
            sum(len(ts) for ts in ref["times"]), 1
        )
    print()
    print(
        "| model | net | batch | dtype | devices | forward samples/s | fwd+bwd samples/s "
        "| compile fwd / fwd+bwd (s) | spike-time error max / median (ms) | relative error max "
        "| outputs spiking | spike/no-spike mismatches |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        net = "5-" + "-".join(str(n) for n in r["layers"])
        fwd = r["batch"] / r["fwd_s"]
        grad = f"{r['batch'] / r['grad_s']:.0f}" if "grad_s" in r else "-"
        cgrad = f"{r['compile_grad_s']:.0f}" if "compile_grad_s" in r else "-"
        print(
            f"| {r['model']} | {net} | {r['batch']} | {r['dtype']} | {r['devices']} | {fwd:.0f} "
            f"| {grad} | {r['compile_fwd_s']:.0f} / {cgrad} | {r['spike_error_ms'][0]:.1e} / {r['spike_error_ms'][1]:.1e} "
            f"| {r['spike_error_rel']:.1e} | {r['spiking']:.0%} | {r['spike_mismatch']} |"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump([{k: v for k, v in r.items() if k != "times"} for r in rows], f, indent=1)


if __name__ == "__main__":
    main()
