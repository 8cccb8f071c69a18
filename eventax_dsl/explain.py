"""Human- and machine-readable summaries of a checked model (``--explain``)."""

from __future__ import annotations

import sympy as sp

from .checker.ir import ModelIR
from .checker.simplify import DT, dt_name


def _s(expr) -> str:
    return sp.sstr(expr, full_prec=False)


def _shape(shape) -> str:
    return f"[{shape[0]}]" if shape else ""


def explain(ir: ModelIR) -> str:
    """A plain-text report: states, parameters, equations, rules and linear blocks."""
    out = [f"neuron {ir.name}  ({ir.filename}, sha256 {ir.source_sha256[:12]})"]
    if ir.doc:
        out += ["  " + line for line in ir.doc.splitlines()]
    out.append("\nstates:")
    for s in ir.states:
        out.append(f"  {s.name}{_shape(s.shape)}  [{s.unit}]  initial {_s(s.init)}")
    out.append("parameters:")
    for p in ir.params:
        flag = "  learnable" if p.learnable else ""
        out.append(f"  {p.name}{_shape(p.shape)} = {p.default}  [{p.unit}]{flag}")
    if ir.channels:
        out.append("weight channels: " + ", ".join(c.name + _shape(c.shape) for c in ir.channels))
    out.append("equations (simplified, aliases inlined):")
    for s in ir.states:
        out.append(f"  {s.name}' = {_s(ir.dynamics.get(s.name, 0))}")
    if ir.aliases:
        out.append("aliases:")
        out += [f"  {k} = {_s(v)}" for k, v in ir.aliases.items()]
    if ir.spike is None:
        out.append("spike: none (the model never spikes)")
    else:
        guard = " unless refractory" if ir.guarded else ""
        out.append(f"spike: upward zero crossing of {_s(ir.spike)}{guard}")
    if ir.refractory is not None:
        clamp = ", clamping " + ", ".join(ir.clamped) if ir.clamped else ""
        if not ir.keep_input:
            fate = "input blocked"
        else:
            fate = "input applied" + (" except to clamped states" if ir.clamped else "")
        out.append(f"refractory: {_s(ir.refractory)} ms{clamp}, {fate}")
    if ir.reset:
        out.append("reset:")
        out += [f"  {k} <- {_s(v)}" for k, v in ir.reset.items()]
    if ir.receive:
        out.append("on input:")
        out += [f"  {k} <- {_s(v)}" for k, v in ir.receive.items()]
    out.append("observables: " + ", ".join(f"{k} = {_s(v)}" if str(v) != k else k
                                            for k, v in ir.observables.items()))
    if ir.linear_blocks:
        out.append("linear blocks (constant coefficients; verdicts below): "
                   + "; ".join("(" + ", ".join(b) + ")" for b in ir.linear_blocks))
    else:
        out.append("linear blocks: none")
    exact = set(ir.exact_states)
    nonlinear = [s.name for s in ir.states if s.name not in exact]
    if nonlinear:
        out.append("integrated numerically: " + ", ".join(nonlinear))
    if ir.blocks:
        out.append("exact integration (simulator option integrator='auto'):")
        for b in ir.blocks:
            out.append(f"  ({', '.join(b.states)}): {b.reason}")
            for k, v in b.solution.items():
                out.append(f"      {k}({dt_name(ir)}) = {_closed(v, ir)}")
    out.append("spike times: " + spike_integration(ir))
    for note in ir.rewrites:
        out.append("note: " + note)
    return "\n".join(out)


def _closed(expr, ir: ModelIR) -> str:
    """A closed form with its time step shown as ``dt`` (``Δt`` if the model has a ``dt``)."""
    return _s(expr.xreplace({DT: sp.Symbol(dt_name(ir))}))


def spike_integration(ir: ModelIR) -> str:
    """How the simulator finds this model's spike times (see eventax_dsl.sim.exact)."""
    if ir.spike is None:
        return "none (the model never spikes)"
    deps = ir.spike_states
    if not ir.exact_spike:
        numeric = [s for s in deps if s not in ir.exact_states] or deps
        return ("root finding on the numeric solution (the condition reads "
                + ", ".join(numeric) + ", integrated numerically)")
    where = ("no ODE solver between events" if set(ir.exact_states) == set(ir.state_names)
             else "the other states are integrated numerically")
    rates = ir.spike_rates
    if len(rates) <= 2:
        guarantee = "a crossing inside a step is found exactly (at most one extremum)"
    elif all(r == 0 for r in rates):  # sim/exact.py: no rate, no bound
        guarantee = (f"the condition depends on {len(rates)} changing states, all with rate 0: "
                     "steps are not bounded, so a crossing that rises and falls back within "
                     "one step can be missed; set SimOptions(dtmax=...) to bound them")
    else:
        guarantee = (f"the condition depends on {len(rates)} changing states: steps are bounded by "
                     "half their shortest time constant to catch brief crossings")
    return f"root finding on the closed form of {', '.join(deps)}; {where}; {guarantee}"


def explain_json(ir: ModelIR) -> dict:
    """The same report as a JSON-serialisable dict (``notes``: the text report's ``note:`` lines)."""
    return {
        "name": ir.name,
        "sha256": ir.source_sha256,
        "states": [{"name": s.name, "shape": list(s.shape), "unit": s.unit, "init": _s(s.init)}
                   for s in ir.states],
        "parameters": [{"name": p.name, "shape": list(p.shape), "default": p.default, "unit": p.unit,
                        "learnable": p.learnable} for p in ir.params],
        "channels": [{"name": c.name, "shape": list(c.shape)} for c in ir.channels],
        "equations": {k: _s(v) for k, v in ir.dynamics.items()},
        "aliases": {k: _s(v) for k, v in ir.aliases.items()},
        "spike": None if ir.spike is None else _s(ir.spike),
        "guarded": ir.guarded,
        "refractory": None if ir.refractory is None else _s(ir.refractory),
        "clamped": list(ir.clamped),
        "keep_input": ir.keep_input,
        "reset": {k: _s(v) for k, v in ir.reset.items()},
        "input": {k: _s(v) for k, v in ir.receive.items()},
        "observables": {k: _s(v) for k, v in ir.observables.items()},
        "linear_blocks": [list(b) for b in ir.linear_blocks],
        "integration": {
            "exact_states": list(ir.exact_states),
            "numeric_states": [s.name for s in ir.states if s.name not in ir.exact_states],
            "blocks": [{"states": list(b.states), "exact": b.exact, "reason": b.reason,
                        "closed_form": {k: _closed(v, ir) for k, v in b.solution.items()}}
                       for b in ir.blocks],
            "spike_times": spike_integration(ir),
        },
        "notes": list(ir.rewrites),
    }
