"""Side by side with Eventax 0.1.0 (the Diffrax-based EventProp simulator): LIF 5-50-3 and QIF 5-20-3.

    python benchmarks/peers/eventax_side_by_side.py [--network lif|qif|both] [--batch 256]
        [--repeats 3] [--peer-python /work/peers-venv/bin/python] [--json /tmp/sbs_NETWORK.json]

What is compared
----------------
The same network (same weights, same inputs, same time constants, same
threshold and reset) is simulated by eventax-dsl and by Eventax, and for every
simulator configuration we report, after compilation (median of ``--repeats``
calls on the whole batch):

- forward samples/s: ``jax.vmap`` of the time to first spike of the outputs;
- forward+backward samples/s: ``jax.value_and_grad`` of a time-to-first-spike
  cross-entropy (``softmax(-t / 5 ms)``, silent outputs count as ``t_max = 60``
  ms) w.r.t. the weights and the biases (the parameters both libraries train;
  the time constants stay fixed);
- the spike-time error: max and median of ``|t - t_ref|`` over the output
  first-spike times that are finite in both runs, plus the number of outputs
  that spike in one run only, against a **float64 tight-tolerance reference**
  (eventax-dsl, ``rtol = atol = 1e-12``, root tolerance ``1e-13``);
- the ratio eventax-dsl / Eventax of the throughputs.

As a check that the two libraries really simulate the same network, Eventax
also runs a float64 tight-tolerance reference of its own (Tsit5, PID controller
at ``rtol = atol = 1e-12``, Newton at ``1e-12``); the line "references agree"
gives its largest distance from eventax-dsl's reference.

Networks
--------
``lif``: Yin-Yang 5-50-3, LIF in both layers (``models/lif.neuron``: tau_mem
10 ms, tau_syn 5 ms, threshold 1, reset to 0, zero bias), weights
``N(4, 2^2)/sqrt(5)`` and ``N(2, 2^2)/sqrt(50)``, the first ``--batch``
training samples of ``datasets.yinyang_splits()``. Eventax: ``neuron_models.LIF``
with ``thresh=1, vreset=0, tmem=10, tsyn=5, init_bias=0``.

``qif``: Yin-Yang 5-20-3, QIF in both layers (tau_mem 10 ms, tau_syn 5 ms, zero
bias), the architecture of Eventax's QIF Yin-Yang example and of the issue's
throughput goal (float32, batch 256). The time constants are those of
``models/qif.neuron``; the example notebook's own values and step size were
not checked. The weights and inputs are those of ``benchmarks/throughput.py
--quick`` (``N(1.5, 1)/sqrt(fan_in)``, key 0; ``datasets.yinyang(batch,
seed=42)``), so the rows can be read next to that table. At this
initialisation about 30 % of the outputs spike before ``t_max``; the errors are
over those.

QIF: which Eventax model, and the parameter mapping
---------------------------------------------------
``models/qif.neuron`` is the phase form of Klos & Memmesheimer (PRL 134,
027301, 2025) of ``tau_mem V' = V^2 - V + I``, ``V = -pi cot(pi phi)``:

    tau_mem phi' = cos^2(pi phi) + sin(pi phi) cos(pi phi) / pi + (bias + i) sin^2(pi phi) / pi^2
    tau_syn i'   = -i,        spike when phi >= 1, then phi = 0,     input of weight w: i += w
    initial state phi = 1/2 (V = 0), i = 0.

Eventax's ``neuron_models.QIF`` integrates ``tau_mem phi' = cos(pi phi) [cos(pi phi) +
sin(pi phi) / pi] + sin^2(pi phi) (I + I_c) / pi^2``, ``tau_syn I' = -I`` (its docs
write the voltage form as ``V^2 + I``, but its phase transform ``phi = arctan(V/pi)/pi
+ 1/2`` gives the same ``-V`` term as ours), with threshold ``phi = 1``, reset
``phi = 0`` (a hard ``where``), inputs adding ``W`` to ``I`` and the same initial
state. That is term for term our right-hand side, so the mapping is exact:

    ours tau_mem <-> tmem,  tau_syn <-> tsyn,  bias <-> ic (init_bias),
    weights[0]["w"] (5 x 20) <-> weights[n:, :20],  weights[1]["w"] (20 x 3) <-> weights[:20, 20:]

with ``n = 23`` neurons (Eventax's matrix has a row per source: the 23 neurons,
then the 5 inputs). Eventax's ``PQIF`` is not the same model: it resets to
``phi = -1`` and keeps weights, biases and time constants positive through an
exponential parametrisation. Two implementation details of Eventax's QIF differ
from ours only numerically: after every event it clips every ``phi`` to at most
``1 - eps`` (a no-op unless a crossing was missed), and it lets only the neuron
with the largest ``phi`` spike at an event (simultaneous spikes are
measure-zero here).

Configurations
--------------
- eventax-dsl: its float32 defaults (Tsit5 + PID at 1e-6 with one solver step per
  loop iteration, root tolerance 1e-6) and its float64 defaults (1e-8, 1e-12); for
  QIF also float32 at 3e-7 and float64 with Dopri8 at 5e-8 and 8e-8 (the settings of
  ``benchmarks/RESULTS.md`` that meet the throughput goal's accuracy); for LIF also
  the exact closed-form path, which is what ``integrator="auto"`` picks for LIF (rows
  "numeric" force Tsit5). Our float32 and float64 rows run in separate processes
  (``jax_enable_x64`` is process-wide), on weights drawn in float32.
- Eventax: its defaults (fixed-step Euler, ``dt = 0.01`` ms, Newton root
  finding at ``rtol = atol = 1e-2`` on the spike time), the same at ``dt = 0.05``
  ms (the configuration behind issue 3's baseline of 267 samples/s), and an accurate one
  (Tsit5 + PID at ``rtol = atol = 1e-5`` and Newton at 1e-6: our float32
  tolerances), and the same with Eventax's default Newton tolerance 1e-2 (the
  accurate configuration of the first version of this script; Newton at 1e-6
  fails on part of the LIF batch). All in float32. Event budget
  ``max_event_steps``: 1 + inputs + 10 spikes per neuron, the budget
  eventax-dsl uses by default.

Eventax lives in its own virtual environment (``pip install eventax==0.1.0``,
e.g. ``/work/peers-venv``); its side runs in a subprocess with ``--peer-python``
(the worker imports only ``eventax``, ``diffrax``, ``optimistix``, ``equinox``,
``jax`` and ``numpy``). No Eventax code is copied: it is driven through its
public classes (``eventax.evnn.FFEvNN``, ``eventax.neuron_models.LIF`` / ``QIF``).
Samples on which Eventax raises (e.g. its Newton search or its step budget runs
out) are reported and left out of its timing and errors; if the batched run
still raises on the remaining samples, the row says so and has no figures.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
T_MAX = 60.0
TAU0 = 5.0
IN = 5
SPIKES_PER_NEURON = 10  # eventax-dsl's default event budget, given to Eventax too

# The two networks: model, layer sizes, Eventax model class name.
NETWORKS = {
    "lif": dict(model="lif", layers=[50, 3], eventax_model="LIF"),
    "qif": dict(model="qif", layers=[20, 3], eventax_model="QIF"),
}

# Rows of each side: (row name, precision, options). Options are plain JSON so
# that they can travel to the worker processes.
REFERENCE_OPTIONS = dict(rtol=1e-12, atol=1e-12, root_tol=1e-13, max_solver_steps=100000)
OURS_ROWS = {
    "lif": [
        ("eventax-dsl exact (closed form), f32", "float32", dict(integrator="auto")),
        ("eventax-dsl numeric (Tsit5, defaults), f32", "float32", dict(integrator="numeric")),
        ("eventax-dsl exact (closed form), f64", "float64", dict(integrator="auto")),
    ],
    "qif": [
        ("eventax-dsl defaults, f32", "float32", {}),
        ("eventax-dsl rtol = atol = 3e-7, f32", "float32", dict(rtol=3e-7, atol=3e-7)),
        ("eventax-dsl defaults, f64", "float64", {}),
        ("eventax-dsl Dopri8, rtol = atol = 5e-8, f64", "float64",
         dict(solver="dopri8", rtol=5e-8, atol=5e-8)),
        ("eventax-dsl Dopri8, rtol = atol = 8e-8, f64", "float64",
         dict(solver="dopri8", rtol=8e-8, atol=8e-8)),
    ],
}
EVENTAX_ROWS = [
    ("Eventax defaults (Euler dt=0.01), f32", dict(solver="euler")),
    ("Eventax Euler dt=0.05 (issue 3's baseline), f32", dict(solver="euler", dt0=0.05)),
    ("Eventax Tsit5 + PID 1e-5, Newton 1e-6, f32", dict(solver="tsit5", tol=1e-5, root_tol=1e-6)),
    ("Eventax Tsit5 + PID 1e-5, Newton 1e-2, f32", dict(solver="tsit5", tol=1e-5, root_tol=1e-2)),
]
EVENTAX_REFERENCE = dict(solver="tsit5", tol=1e-12, root_tol=1e-12, dt0=1e-3)


def _time(fn, *args, repeats):
    """Compile time (first call) and median run time of ``fn(*args)``, and its output."""
    import jax  # noqa: PLC0415

    t0 = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    compile_s = time.perf_counter() - t0
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        runs.append(time.perf_counter() - t0)
    return compile_s, (statistics.median(runs) if runs else float("nan")), out


def _loss_of_times(t, y):
    """Time-to-first-spike cross-entropy: silent outputs count as ``T_MAX``."""
    import jax  # noqa: PLC0415
    import jax.numpy as jnp  # noqa: PLC0415

    logits = -jnp.where(jnp.isfinite(t), t, T_MAX) / TAU0
    return -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(y.shape[0]), y])


def _short_error(exc) -> str:
    """The one line of an (Equinox) runtime error that says what went wrong."""
    found = re.findall(r"EquinoxRuntimeError: ([^\n]*)", str(exc))
    return found[0] if found else str(exc).strip().split("\n")[0][:200]


def _timed_rows(forward, grad, params, x, y, repeats, reference):
    """Run one configuration: output times, and timings unless it is a reference."""
    import numpy as np  # noqa: PLC0415

    if reference:
        _, _, times = _time(forward, params, x, repeats=0)
        return dict(times=np.asarray(times, float).tolist())
    c_f, t_f, times = _time(forward, params, x, repeats=repeats)
    c_g, t_g, _ = _time(grad, params, x, y, repeats=repeats)
    n = x.shape[0]
    return dict(t_f=t_f / n, t_g=t_g / n, c_f=c_f, c_g=c_g, times=np.asarray(times, float).tolist())


# ---------------------------------------------------------------- eventax-dsl side
def _draw_data(network: str, batch: int) -> dict:
    """Weights (drawn in float32) and inputs (rounded to float32) of one network."""
    import jax.numpy as jnp  # noqa: PLC0415
    import jax.random as jr  # noqa: PLC0415
    import numpy as np  # noqa: PLC0415

    import eventax_dsl  # noqa: PLC0415
    from eventax_dsl import datasets  # noqa: PLC0415
    from eventax_dsl.sim import FeedForward, normal_init  # noqa: PLC0415

    spec = NETWORKS[network]
    model = eventax_dsl.load(ROOT / "models" / f"{spec['model']}.neuron")
    if network == "lif":  # the network of the first version of this script
        init = [normal_init(4.0, 2.0), normal_init(2.0, 2.0)]
        (feat, labels), _, _ = datasets.yinyang_splits()
        feat, labels = feat[:batch], labels[:batch]
    else:  # the network and inputs of benchmarks/throughput.py
        init = normal_init(1.5, 1.0)
        feat, labels = datasets.yinyang(batch, seed=42)
    net = FeedForward(model, spec["layers"], in_size=IN, key=jr.key(0), weight_init=init,
                      dtype=jnp.float32)
    return dict(x=np.asarray(datasets.encode_yinyang(feat, t_max=30.0), np.float32),
                y=np.asarray(labels, np.int32),
                w0=np.asarray(net.weights[0]["w"], np.float32),
                w1=np.asarray(net.weights[1]["w"], np.float32))


def ours_worker(spec: dict, save) -> dict:
    """One precision of eventax-dsl: every row of ``spec`` on the stored network.
    ``save(results)`` is called after every row, so a crash keeps the rows done."""
    import jax  # noqa: PLC0415

    jax.config.update("jax_enable_x64", spec["x64"])
    import equinox as eqx  # noqa: PLC0415
    import jax.numpy as jnp  # noqa: PLC0415
    import jax.random as jr  # noqa: PLC0415
    import numpy as np  # noqa: PLC0415

    import eventax_dsl  # noqa: PLC0415
    from eventax_dsl.sim import FeedForward, SimOptions  # noqa: PLC0415

    dtype = jnp.float64 if spec["x64"] else jnp.float32
    net_spec = NETWORKS[spec["network"]]
    data = np.load(spec["data"])
    model = eventax_dsl.load(ROOT / "models" / f"{net_spec['model']}.neuron")
    net = FeedForward(model, net_spec["layers"], in_size=IN, key=jr.key(0), dtype=dtype)
    net = eqx.tree_at(lambda n: n.weights, net, ({"w": jnp.asarray(data["w0"], dtype)},
                                                 {"w": jnp.asarray(data["w1"], dtype)}))
    x, y = jnp.asarray(data["x"], dtype), jnp.asarray(data["y"])

    # trained: the weights and the biases (as in Eventax; the time constants stay fixed)
    spec_tree = jax.tree_util.tree_map(lambda _: False, net)
    spec_tree = eqx.tree_at(lambda s: s.weights, spec_tree, tuple({k: True for k in w} for w in net.weights))
    spec_tree = eqx.tree_at(lambda s: [p.params["bias"] for p in s.populations], spec_tree,
                            [True] * len(net.populations))
    params, static = eqx.partition(net, spec_tree)

    results = {}
    for name, options, reference in spec["rows"]:
        opts = SimOptions(**options)

        @jax.jit
        def forward(p, xs, o=opts):
            m = eqx.combine(p, static)
            return jax.vmap(lambda v: m.ttfs(v, T_MAX, options=o))(xs)

        grad = jax.jit(jax.value_and_grad(lambda p, xs, ys, f=forward: _loss_of_times(f(p, xs), ys)))
        results[name] = _timed_rows(forward, grad, params, x, y, spec["repeats"], reference)
        results[name].update(failed=0, error=None)
        save(results)
        print(f"  done: {name}", file=sys.stderr, flush=True)
    return results


# ---------------------------------------------------------------- Eventax side
def eventax_worker(spec: dict, save) -> dict:
    """Runs inside the Eventax virtualenv: imports only eventax and its dependencies."""
    import jax  # noqa: PLC0415

    jax.config.update("jax_enable_x64", spec["x64"])
    import diffrax as dfx  # noqa: PLC0415
    import equinox as eqx  # noqa: PLC0415
    import jax.numpy as jnp  # noqa: PLC0415
    import numpy as np  # noqa: PLC0415
    import optimistix as optx  # noqa: PLC0415
    from eventax import neuron_models  # noqa: PLC0415
    from eventax.evnn import FFEvNN  # noqa: PLC0415

    dtype = jnp.float64 if spec["x64"] else jnp.float32
    net_spec = NETWORKS[spec["network"]]
    hidden, out = net_spec["layers"]
    n = hidden + out
    data = np.load(spec["data"])
    x = jnp.asarray(data["x"], dtype)[:, :, None]  # (batch, inputs, 1 spike each)
    y = jnp.asarray(data["y"])
    # Eventax's weight matrix: one row per source (the n neurons, then the inputs), one column per target
    w = np.zeros((n + IN, n), np.float64)
    w[n:, :hidden] = data["w0"]
    w[:hidden, hidden:] = data["w1"]
    model_kwargs = dict(tsyn=5.0, tmem=10.0)
    if net_spec["eventax_model"] == "LIF":
        model_kwargs.update(thresh=1.0, vreset=0.0)

    results = {}
    for name, cfg, reference in spec["rows"]:
        extra = {}
        if cfg["solver"] == "tsit5":
            extra = dict(solver=dfx.Tsit5(),
                         stepsize_controller=dfx.PIDController(rtol=cfg["tol"], atol=cfg["tol"]),
                         root_finder=optx.Newton(cfg["root_tol"], cfg["root_tol"], optx.rms_norm))
        if "dt0" in cfg:  # initial step; Eventax also derives its step budget from it
            extra["solver_stepsize"] = cfg["dt0"]
        net = FFEvNN(layers=[hidden, out], in_size=IN, neuron_model=getattr(neuron_models, net_spec["eventax_model"]),
                     max_solver_time=T_MAX, key=jax.random.key(0), init_weights=jnp.asarray(w, dtype),
                     init_bias=0.0, max_event_steps=1 + IN + SPIKES_PER_NEURON * n, dtype=dtype,
                     **model_kwargs, **extra)
        params, static = eqx.partition(net, eqx.is_inexact_array)

        @jax.jit
        def forward(p, xs, static=static):
            m = eqx.combine(p, static)
            return jax.vmap(m.ttfs)(xs)

        grad = jax.jit(jax.value_and_grad(lambda p, xs, ys, f=forward: _loss_of_times(f(p, xs), ys)))

        # Eventax raises (equinox runtime error) when a sample exhausts a budget or its
        # Newton search fails; then find those samples one by one and leave them out.
        ok, error = list(range(x.shape[0])), None
        t0 = time.perf_counter()
        try:
            jax.block_until_ready(forward(params, x))
            first_call_s = time.perf_counter() - t0  # compiles the forward pass
        except Exception:  # noqa: BLE001 - Eventax's own runtime error
            first_call_s = None  # the timing below runs on fewer samples and compiles again
            one = jax.jit(lambda p, v, static=static: eqx.combine(p, static).ttfs(v))
            ok = []
            for k in range(x.shape[0]):
                try:
                    jax.block_until_ready(one(params, x[k]))
                    ok.append(k)
                except Exception as exc:  # noqa: BLE001
                    error = _short_error(exc)
        idx = np.asarray(ok)
        try:
            row = _timed_rows(forward, grad, params, x[idx], y[idx], spec["repeats"], reference)
        except Exception as exc:  # noqa: BLE001 - seen: samples that run alone fail together
            alone = f"{x.shape[0] - len(ok)} raise alone ({error}); " if error else ""
            results[name] = dict(times=None, failed=int(x.shape[0]),
                                 error=f"{alone}the batched run on the {len(ok)} samples that run "
                                       f"alone raised: {_short_error(exc)}")
            save(results)
            print(f"  failed: {name}", file=sys.stderr, flush=True)
            continue
        if first_call_s is not None and not reference:
            row["c_f"] = first_call_s
        full = np.full((x.shape[0], out), np.nan)
        full[idx] = np.asarray(row["times"])
        row.update(times=full.tolist(), failed=int(x.shape[0] - len(ok)), error=error)
        results[name] = row
        save(results)
        print(f"  done: {name}", file=sys.stderr, flush=True)
    return results


# ---------------------------------------------------------------- driver
def _run_worker(python: str, side: str, spec: dict, tmp: str) -> dict:
    path, out = Path(tmp) / f"spec_{side}.json", Path(tmp) / f"out_{side}.json"
    path.write_text(json.dumps(spec))
    out.unlink(missing_ok=True)  # never read a previous worker's results
    proc = subprocess.run([python, __file__, "--worker", side, str(path), str(out)],
                          stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        print(f"{side} worker failed (rows it finished are kept):\n" + proc.stderr[-3000:])
    return json.loads(out.read_text()) if out.exists() else {}


def _error(times, ref):
    """Max and median |t - t_ref| over outputs finite in both, and spike/no-spike mismatches.
    Samples a simulator failed on (NaN rows) are left out."""
    import numpy as np  # noqa: PLC0415

    t, r = np.asarray(times, float), np.asarray(ref, float)
    ran = ~np.isnan(t)
    both = ran & np.isfinite(t) & np.isfinite(r)
    mismatch = int(np.sum(ran & (np.isfinite(t) != np.isfinite(r))))
    d = np.abs(t[both] - r[both])
    return (float(d.max()), float(np.median(d))) if d.size else (0.0, 0.0), mismatch, int(both.sum())


def run_network(network: str, args) -> None:
    import numpy as np  # noqa: PLC0415

    load0 = os.getloadavg()
    data = _draw_data(network, args.batch)
    with tempfile.TemporaryDirectory() as tmp:
        np.savez(Path(tmp) / "data.npz", **data)
        common = dict(network=network, data=str(Path(tmp) / "data.npz"), repeats=args.repeats)
        rows = {}
        ours = OURS_ROWS[network]
        # float64 process: the tight reference first, then the float64 rows
        f64 = [("reference", REFERENCE_OPTIONS, True)] + [(n, o, False) for n, p, o in ours if p == "float64"]
        f32 = [(n, o, False) for n, p, o in ours if p == "float32"]
        print(f"[{network}] eventax-dsl float64 (reference + rows) ...", file=sys.stderr, flush=True)
        got64 = _run_worker(sys.executable, "ours", dict(common, x64=True, rows=f64), tmp)
        print(f"[{network}] eventax-dsl float32 ...", file=sys.stderr, flush=True)
        got32 = _run_worker(sys.executable, "ours", dict(common, x64=False, rows=f32), tmp)
        for name, _, _ in ours:
            if name in got32 or name in got64:
                rows[name] = got32.get(name) or got64.get(name)
        ref = got64.get("reference", {}).get("times")
        print(f"[{network}] Eventax float32 ...", file=sys.stderr, flush=True)
        rows.update(_run_worker(args.peer_python, "eventax", dict(
            common, x64=False, rows=[(n, c, False) for n, c in EVENTAX_ROWS]), tmp))
        print(f"[{network}] Eventax float64 reference ...", file=sys.stderr, flush=True)
        their_ref = _run_worker(args.peer_python, "eventax", dict(
            common, x64=True, rows=[("reference", EVENTAX_REFERENCE, True)]), tmp).get("reference", {}).get("times")
    load1 = os.getloadavg()
    if args.json:  # everything measured, output times included
        Path(args.json.replace("NETWORK", network)).write_text(json.dumps(dict(
            network=network, batch=args.batch, repeats=args.repeats, load=[load0, load1],
            rows=rows, reference=ref, eventax_reference=their_ref)))

    hidden, out = NETWORKS[network]["layers"]
    print()
    print(f"Yin-Yang 5-{hidden}-{out} {network.upper()} -> {network.upper()}, batch {args.batch}, "
          f"median of {args.repeats} repeats after compilation; load average "
          f"{load0[0]:.2f} at start, {load1[0]:.2f} at end")
    if ref is None:
        print("(no float64 reference: errors not available)")
    else:
        finite = np.isfinite(np.asarray(ref, float))
        print(f"error vs eventax-dsl float64 reference (rtol=atol=1e-12, root_tol=1e-13); "
              f"{int(finite.sum())}/{finite.size} reference outputs spike")
        if their_ref is not None:
            (mx, md), mism, nboth = _error(their_ref, ref)
            print(f"references agree: Eventax float64 (Tsit5+PID 1e-12, Newton 1e-12) vs ours: "
                  f"max {mx:.1e} / median {md:.1e} ms over {nboth} outputs, {mism} spike/no-spike mismatches")
    print()
    print("| configuration | forward samples/s | fwd+bwd samples/s | compile fwd / fwd+bwd (s) "
          "| spike-time error max / median (ms) | spike/no-spike mismatches | failed samples |")
    print("|---|---|---|---|---|---|---|")
    for name, r in rows.items():
        if r["times"] is None:  # nothing measured
            print(f"| {name} | - | - | - | - | - | {r['error']} |")
            continue
        if ref is not None:
            (mx, md), mism, _ = _error(r["times"], ref)
            err, mism = f"{mx:.1e} / {md:.1e}", str(mism)
        else:
            err, mism = "-", "-"
        failed = f"{r['failed']}/{args.batch}" + (f" ({r['error']})" if r["failed"] else "")
        print(f"| {name} | {1 / r['t_f']:.1f} | {1 / r['t_g']:.1f} | {r['c_f']:.0f} / {r['c_g']:.0f} "
              f"| {err} | {mism} | {failed} |")
    ours_names = [n for n, _, _ in OURS_ROWS[network] if rows.get(n, {}).get("t_f")]
    their_names = [n for n, _ in EVENTAX_ROWS if rows.get(n, {}).get("t_f")]
    if ours_names and their_names:
        print()
        print("ratio eventax-dsl / Eventax, forward ; fwd+bwd:")
        for o in ours_names:
            cells = [f"vs {t.rsplit(',', 1)[0]}: {rows[t]['t_f'] / rows[o]['t_f']:.2f} ; "
                     f"{rows[t]['t_g'] / rows[o]['t_g']:.2f}" for t in their_names]
            print(f"  {o}: " + " | ".join(cells))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--network", choices=["lif", "qif", "both"], default="both")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--peer-python", default="/work/peers-venv/bin/python")
    parser.add_argument("--json", help="also write all results (output times included) to this "
                        "file; NETWORK in the name is replaced by lif / qif")
    parser.add_argument("--worker", nargs=3, metavar=("SIDE", "SPEC", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        side, spec_path, out_path = args.worker
        if side == "ours":
            sys.path.insert(0, str(ROOT))
        spec = json.loads(Path(spec_path).read_text())
        (ours_worker if side == "ours" else eventax_worker)(
            spec, save=lambda results: Path(out_path).write_text(json.dumps(results)))
        return
    sys.path.insert(0, str(ROOT))
    for network in (["lif", "qif"] if args.network == "both" else [args.network]):
        run_network(network, args)


if __name__ == "__main__":
    main()
