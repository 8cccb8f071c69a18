"""Side by side with Eventax 0.1.0 (the Diffrax-based EventProp simulator) on one LIF network.

    python benchmarks/peers/eventax_side_by_side.py [--batch 16] [--peer-python /work/peers-venv/bin/python]

Eventax lives in its own virtual environment (``pip install eventax==0.1.0``
into e.g. ``/work/peers-venv``); this script runs the eventax-dsl side in the
current environment and the Eventax side in a subprocess with ``--peer-python``
(the ``--worker`` mode below imports only ``eventax``, ``jax`` and ``numpy``).
No Eventax code is copied: it is used through its public classes
(``eventax.evnn.FFEvNN``, ``eventax.neuron_models.LIF``).

Network: Yin-Yang, 5-50-3, LIF (tau_mem 10 ms, tau_syn 5 ms, threshold 1,
reset to 0, zero bias) in both layers, float32, the same weights and inputs
in both simulators; loss: cross-entropy of the negative first-spike times of
the outputs (silent outputs count as ``t_max = 60`` ms), gradient w.r.t. the
weights and biases. Reported per configuration: forward (first-spike times)
and forward+backward samples/s after compilation (median of ``--repeats``),
and the largest difference of the output first-spike times from eventax-dsl's
exact path.

Eventax configurations: its defaults (fixed-step Euler, dt = 0.01 ms, Newton
root finding with tolerance 1e-2) and Tsit5 with a PID controller at
rtol = atol = 1e-5 (the float32 defaults of eventax-dsl's numeric path).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
T_MAX = 60.0
HIDDEN, OUT, IN = 50, 3, 5


def _time(fn, *args, repeats):
    import jax  # noqa: PLC0415

    t0 = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    compile_s = time.perf_counter() - t0
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        runs.append(time.perf_counter() - t0)
    return compile_s, statistics.median(runs), out


def _loss_of_times(t, y):
    import jax  # noqa: PLC0415
    import jax.numpy as jnp  # noqa: PLC0415

    logits = -jnp.where(jnp.isfinite(t), t, T_MAX) / 5.0
    return -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(y.shape[0]), y])


# --------------------------------------------------------------- Eventax side
def worker(data_path: str, out_path: str, repeats: int):
    """Runs inside the Eventax virtualenv: only eventax, jax, numpy are imported."""
    import diffrax as dfx  # noqa: PLC0415
    import equinox as eqx  # noqa: PLC0415
    import jax  # noqa: PLC0415
    import jax.numpy as jnp  # noqa: PLC0415
    import numpy as np  # noqa: PLC0415
    from eventax.evnn import FFEvNN  # noqa: PLC0415
    from eventax.neuron_models import LIF  # noqa: PLC0415

    data = np.load(data_path)
    x = jnp.asarray(data["x"], jnp.float32)[:, :, None]  # (B, in, 1 spike)
    y = jnp.asarray(data["y"])
    n = HIDDEN + OUT
    # Eventax's weight matrix: rows are sources (the n neurons, then the inputs), columns targets
    w = np.zeros((n + IN, n), np.float32)
    w[n:, :HIDDEN] = data["w0"]
    w[:HIDDEN, HIDDEN:] = data["w1"]
    configs = {
        "eventax defaults (Euler dt=0.01)": {},
        "eventax Tsit5 + PID 1e-5": dict(solver=dfx.Tsit5(),
                                          stepsize_controller=dfx.PIDController(rtol=1e-5, atol=1e-5)),
    }
    results = {}
    for name, extra in configs.items():
        net = FFEvNN(layers=[HIDDEN, OUT], in_size=IN, neuron_model=LIF, max_solver_time=T_MAX,
                     key=jax.random.key(0), init_weights=jnp.asarray(w), init_bias=0.0, thresh=1.0,
                     tsyn=5.0, tmem=10.0, vreset=0.0, max_event_steps=2000, dtype=jnp.float32, **extra)
        params, static = eqx.partition(net, eqx.is_inexact_array)

        @jax.jit
        def forward(p, xs):
            m = eqx.combine(p, static)
            return jax.vmap(m.ttfs)(xs)

        def loss(p, xs, ys):
            return _loss_of_times(forward(p, xs), ys)

        grad = jax.jit(jax.value_and_grad(loss))
        # samples Eventax cannot simulate (it raises) are reported and left out of the timing
        one = jax.jit(lambda p, v: eqx.combine(p, static).ttfs(v))
        ok = []
        for k in range(x.shape[0]):
            try:
                jax.block_until_ready(one(params, x[k]))
                ok.append(k)
            except Exception as exc:  # noqa: BLE001 - Eventax's own runtime error
                found = re.findall(r"EquinoxRuntimeError: ([^\n]*)", str(exc))
                error = found[0] if found else str(exc).split("\n")[0]
        idx = np.asarray(ok)
        c_f, t_f, times = _time(forward, params, x[idx], repeats=repeats)
        c_g, t_g, _ = _time(grad, params, x[idx], y[idx], repeats=repeats)
        full = np.full((x.shape[0], OUT), np.nan)
        full[idx] = np.asarray(times)
        results[name] = dict(t_f=t_f / len(ok), t_g=t_g / len(ok), c_f=c_f, c_g=c_g,
                             times=full.tolist(), failed=int(x.shape[0] - len(ok)),
                             error=None if len(ok) == x.shape[0] else error)
    Path(out_path).write_text(json.dumps(results))


# ---------------------------------------------------------- eventax-dsl side
def ours(args):
    import equinox as eqx  # noqa: PLC0415
    import jax  # noqa: PLC0415
    import jax.numpy as jnp  # noqa: PLC0415
    import jax.random as jr  # noqa: PLC0415
    import numpy as np  # noqa: PLC0415

    import eventax_dsl  # noqa: PLC0415
    from eventax_dsl import datasets  # noqa: PLC0415
    from eventax_dsl.sim import FeedForward, SimOptions, normal_init  # noqa: PLC0415

    LIF = eventax_dsl.load(ROOT / "models" / "lif.neuron")
    (feat, labels), _, _ = datasets.yinyang_splits()
    x = jnp.asarray(datasets.encode_yinyang(feat[: args.batch], t_max=30.0), jnp.float32)
    y = jnp.asarray(labels[: args.batch])
    net = FeedForward([LIF, LIF], [HIDDEN, OUT], in_size=IN, key=jr.key(0),
                      weight_init=[normal_init(4.0, 2.0), normal_init(2.0, 2.0)], dtype=jnp.float32)

    def pick(n):  # weights and biases are trained
        spec = jax.tree_util.tree_map(lambda _: False, n)
        spec = eqx.tree_at(lambda s: s.weights, spec, tuple({k: True for k in w} for w in n.weights))
        return eqx.tree_at(lambda s: [p.params["bias"] for p in s.populations], spec, [True, True])

    params, static = eqx.partition(net, pick(net))
    results = {}
    for name, integrator in (("eventax-dsl exact (closed form)", "auto"),
                             ("eventax-dsl numeric (Tsit5 + PID 1e-5)", "numeric")):
        options = SimOptions(integrator=integrator)

        @jax.jit
        def forward(p, xs, o=options):
            m = eqx.combine(p, static)
            return jax.vmap(lambda v: m.ttfs(v, T_MAX, options=o))(xs)

        def loss(p, xs, ys, f=forward):
            return _loss_of_times(f(p, xs), ys)

        grad = jax.jit(jax.value_and_grad(loss))
        c_f, t_f, times = _time(forward, params, x, repeats=args.repeats)
        c_g, t_g, _ = _time(grad, params, x, y, repeats=args.repeats)
        results[name] = dict(t_f=t_f / args.batch, t_g=t_g / args.batch, c_f=c_f, c_g=c_g,
                             times=np.asarray(times).tolist(), failed=0, error=None)
    data = dict(x=np.asarray(x), y=np.asarray(y), w0=np.asarray(net.weights[0]["w"]),
                w1=np.asarray(net.weights[1]["w"]))
    return results, data


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--peer-python", default="/work/peers-venv/bin/python")
    parser.add_argument("--worker", nargs=2, metavar=("DATA", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(*args.worker, repeats=args.repeats)
        return
    import numpy as np  # noqa: PLC0415

    sys.path.insert(0, str(ROOT))
    results, data = ours(args)
    with tempfile.TemporaryDirectory() as tmp:
        np.savez(Path(tmp) / "data.npz", **data)
        out = Path(tmp) / "peer.json"
        cmd = [args.peer_python, __file__, "--worker", str(Path(tmp) / "data.npz"), str(out),
               "--repeats", str(args.repeats)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            print("Eventax side failed:\n" + proc.stderr[-3000:])
        else:
            results.update(json.loads(out.read_text()))
    ref = np.asarray(results["eventax-dsl exact (closed form)"]["times"])
    print(f"Yin-Yang 5-50-3 LIF -> LIF, float32, batch {args.batch}; samples/s after compilation; "
          "first-spike times of the outputs vs eventax-dsl's exact path")
    print(f"{'':42s} {'forward':>10s} {'fwd+bwd':>10s} {'compile f/b':>12s}  max |t - t_exact| (ms)")
    for name, r in results.items():
        t = np.asarray(r["times"], dtype=float)
        ran = ~np.isnan(t)
        both = ran & np.isfinite(t) & np.isfinite(ref)
        diff = float(np.max(np.abs(np.where(both, t, 0) - np.where(both, ref, 0)), initial=0.0))
        silent = int(np.sum(ran & (np.isfinite(t) != np.isfinite(ref))))
        note = f" ({silent} outputs differ in spiking)" if silent else ""
        if r["failed"]:
            note += f"; failed on {r['failed']}/{args.batch} samples ({r['error']}), timed on the rest"
        print(f"{name:42s} {1 / r['t_f']:10.1f} {1 / r['t_g']:10.1f} {r['c_f']:6.0f}/{r['c_g']:4.0f} s  "
              f"{diff:.2e}{note}")


if __name__ == "__main__":
    main()
