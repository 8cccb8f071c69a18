"""Exact integration of linear dynamics between events.

Many states of spiking models obey linear ODEs with constant coefficients
between events: the LIF membrane and its synaptic current, every exponential
synapse, the EGRU gate pre-activations. The compiler finds them
(:func:`eventax_dsl.checker.simplify.solve_block`) and generates their closed
form, ``flow(p, s, dt)`` (see :mod:`eventax_dsl.contract`); a model lists them
in ``EXACT_STATES``. This module makes the simulator use it.

Two paths
---------
**Networks solved entirely in closed form** (every state of every population
exact, each spike condition depending on at most two states: LIF, LI
read-outs): :func:`integrate_closed_form` replaces the ODE solve of the event
loop. Between two events each watched neuron's condition is a constant plus
two exponential modes, so its time derivative has at most one zero, in closed
form (:func:`_stationary_point`); on either side of it the condition is
monotone, and a safeguarded Newton iteration on the closed form finds the
neuron's first crossing (:func:`first_crossing`). The earliest crossing ends
the interval. No Diffrax, no steps, no step-size control (the options
``solver``, ``rtol``, ``atol``, ``dt``, ``dtmax`` and ``max_solver_steps`` have
nothing to act on; the root finder's tolerance ``root_tol`` is used).

**Everything else** uses :class:`ExactSolver`, a Diffrax solver over the whole
network state. It splits every population's state into its exact states ``E``
and the rest ``N``:

- ``E`` is advanced over a step ``[t0, t1]`` by the closed form,
  ``E(t1) = flow(E(t0), t1 - t0)``. Linear blocks are *closed* (their
  equations read no other state), so this is exact whatever ``N`` does.
- ``N`` is integrated by an inner Runge-Kutta solver (``SimOptions.solver``,
  default Tsit5) on the non-autonomous ODE ``N' = f(E(t), N)``, where ``E(t)``
  is the closed form evaluated at each stage time. The adaptive step size
  controller sees the error of ``N`` only.

Its dense interpolation is the closed form itself for ``E`` (and the inner
solver's interpolation for ``N``), so Diffrax's event root finder locates spike
times on the exact solution. When every population is fully exact but a
condition depends on more states (ALIF) there is no ``N``: a "step" is one
evaluation of the closed form and no ODE is solved at all.

The spike-time gradient of the event loop (the implicit function theorem with
the model's vector field, :func:`eventax_dsl.sim.loop._attach_spike_gradient`)
stays exact: the closed form solves the same ODE.

Not missing a spike
-------------------
Diffrax detects a crossing by the sign of the event function at step ends, so
a condition that goes up through zero and back down within one step is missed.
Numeric steps are short; an exact step may span a whole interval between
events, so :class:`ExactStepController` checks every step (the closed-form
path above makes the same argument per neuron directly): for each neuron
whose spike condition reads only exact states (``EXACT_SPIKE``) and whose
watched term ``T`` (its condition, or its re-arming term) is negative at both
ends of the step, it locates the interior maximum of ``T``: in closed form when
``T`` has two modes (:func:`two_mode_maximum`), else by a safeguarded Newton
iteration on ``T' = 0`` bracketed by ``T'(t0) >= 0 > T'(t1)``
(:func:`searched_maximum`; ``T'`` and ``T''`` are time derivatives of the closed
form). If ``T >= 0`` there, the step is rejected and retried ending at the
maximum, where the sign test then sees the crossing.

This is exact, not a heuristic, when ``T'`` has at most one zero per step. ``T``
is a combination of the exponential modes of the states the condition depends
on (plus a constant), so ``T'`` is a combination of ``m`` exponential(-polynomial)
terms and has at most ``m - 1`` zeros (the generalised Descartes rule). For a
condition that depends on at most two states (LIF: ``v`` and its current
``i``) this is at most one zero on the whole real line: no crossing can be
missed, and steps are unbounded. For more states (ALIF: ``v``, ``i`` and the
adaptation ``a``) steps are additionally bounded by half the shortest time
constant of those states (``spike_rates``), which keeps two zeros of ``T'`` in
one step unlikely but is not a proof. If all of those rates are zero (a chain of
perfect integrators, ``v' = i, i' = j``: ``T`` is a polynomial) there is no time
constant and no bound; give ``SimOptions(dtmax=...)`` for such a model. A
maximum that touches zero to within rounding (a grazing crossing) may still be
missed, as on the numeric path.

Choosing and overriding
-----------------------
``SimOptions(integrator="auto")`` (default) takes one of the two paths above
whenever some population has exact states; ``integrator="numeric"`` restores the purely
numeric path everywhere. To integrate one model numerically, build its
populations from :func:`numeric`\\ ``(Model)`` (same model, ``EXACT_STATES = ()``).
``eventax-compile --explain`` reports, per linear block, whether it is solved
exactly and why.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, ClassVar

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import optimistix as optx

from ..contract import NeuronModel
from . import dynamics as dyn
from .options import SimOptions

__all__ = ["ExactSolver", "ExactStepController", "exact_keys", "numeric", "solver_and_controller",
           "two_mode_maximum", "searched_maximum"]

#: Newton / bisection iterations of the in-step maximum search
NEWTON_STEPS = 10

# ------------------------------------------------------------ per-model override
_NUMERIC: dict[type, type] = {}


def numeric(model):
    """``model`` with exact integration switched off: every state is integrated numerically.

    ``model`` is a model class (returns a subclass with ``EXACT_STATES = ()``, the
    same one on every call, so ``jit`` caches stay valid) or a population (returns
    the same population as an instance of that subclass)::

        LIF = eventax_dsl.load("models/lif.neuron")
        net = FeedForward([numeric(LIF), LI], [50, 3], in_size=5, key=key)
    """
    if isinstance(model, NeuronModel):
        return numeric(type(model))(params=model.params, size=model.size)
    if not (isinstance(model, type) and issubclass(model, NeuronModel)):
        raise TypeError(f"numeric() takes a NeuronModel class or population, got {model!r}")
    if not model.EXACT_STATES:
        return model
    cls = _NUMERIC.get(model)
    if cls is None:
        cls = type(model)(model.__name__ + "Numeric", (model,),
                          {"EXACT_STATES": (), "EXACT_SPIKE": False, "__module__": model.__module__,
                           "__doc__": f"{model.__name__}, integrated numerically (eventax_dsl.sim.exact.numeric)."})
        _NUMERIC[model] = cls
    return cls


def exact_keys(populations, integrator: str = "auto") -> tuple[tuple[str, ...], ...]:
    """Per population: the states advanced in closed form (none with ``"numeric"``).

    A spiking model whose states are all exact but whose condition is not
    ``EXACT_SPIKE`` (only possible for a hand-written model; the compiler keeps such
    states numeric) is integrated numerically: nothing would bound its steps.
    """
    if integrator == "numeric":
        return tuple(() for _ in populations)
    out = []
    for p in populations:
        model = type(p)
        unguarded = model.SPIKING and not model.EXACT_SPIKE
        full = set(model.EXACT_STATES) == set(model.state_names())
        out.append(() if unguarded and full else tuple(model.EXACT_STATES))
    return tuple(out)


# ------------------------------------------------------------------ state split
def _split(y, keys):
    exact = tuple({k: s[k] for k in ks} for s, ks in zip(y, keys))
    rest = tuple({k: v for k, v in s.items() if k not in ks} for s, ks in zip(y, keys))
    return exact, rest


def _merge(a, b):
    return tuple({**x, **z} for x, z in zip(a, b))


def _advance(populations, exact, dt, hold: dyn.Hold, keys):
    """The exact states after ``dt`` (a scalar, or one per neuron of each population);
    the states of ``hold.spent`` neurons do not move."""
    out = []
    for i, (pop, e, r, ks) in enumerate(zip(populations, exact, hold.refractory, keys)):
        if ks:
            new = pop.propagate(e, dt, r)
            if hold.spent is not None and type(pop).SPIKING:
                new = {k: dyn._select(hold.spent[i], e[k], v) for k, v in new.items()}
            e = new
        out.append(e)
    return tuple(out)


# ----------------------------------------------------------------------- solver
class _NumericField(eqx.Module):
    """``N' = f(E(t), N)``: the network's vector field on the numeric states, with the
    exact states given by their closed form from ``(t0, exact0)``."""

    terms: Any
    exact0: tuple
    t0: Any
    keys: tuple = eqx.field(static=True)

    def __call__(self, t, n, args):
        populations, hold, _ = args
        e = _advance(populations, self.exact0, t - self.t0, hold, self.keys)
        f = self.terms.vf(t, _merge(e, n), args)
        return _split(f, self.keys)[1]


class ExactInterpolation(dfx.AbstractLocalInterpolation):
    """Dense output of :class:`ExactSolver`: the closed form for the exact states, the
    inner solver's interpolation for the others."""

    t0: Any
    t1: Any
    exact0: tuple
    populations: tuple
    hold: dyn.Hold
    numeric: Any
    keys: tuple = eqx.field(static=True)

    def __init__(self, *, t0, t1, exact0, populations, hold, keys, numeric=None, inner_cls=None):
        self.t0 = t0
        self.t1 = t1
        self.exact0 = exact0
        self.populations = populations
        self.hold = hold
        self.keys = keys
        self.numeric = None if inner_cls is None else inner_cls(t0=t0, t1=t1, **numeric)

    def evaluate(self, t0, t1=None, left: bool = True):
        del left
        if t1 is not None:
            return jtu.tree_map(lambda a, b: a - b, self.evaluate(t1), self.evaluate(t0))
        e = _advance(self.populations, self.exact0, t0 - self.t0, self.hold, self.keys)
        n = tuple({} for _ in self.keys) if self.numeric is None else self.numeric.evaluate(t0)
        return _merge(e, n)


class ExactSolver(dfx.AbstractAdaptiveSolver):
    """Closed form for the exact states, ``inner`` (e.g. Tsit5) for the rest (module docs).

    ``keys``: per population, the exact state names. ``inner``: the solver of the
    numeric states, ``None`` when there are none (then nothing is integrated
    numerically and there is no error estimate).
    """

    keys: tuple = eqx.field(static=True)
    inner: dfx.AbstractSolver | None = None
    term_structure: ClassVar = dfx.AbstractTerm

    @property
    def interpolation_cls(self):  # pyright: ignore
        inner_cls = None if self.inner is None else self.inner.interpolation_cls
        return functools.partial(ExactInterpolation, keys=self.keys, inner_cls=inner_cls)

    def order(self, terms):
        return None if self.inner is None else self.inner.order(terms)

    def error_order(self, terms):
        return None if self.inner is None else self.inner.error_order(terms)

    def _inner_terms(self, terms, exact0, t0):
        return dfx.ODETerm(_NumericField(terms, exact0, t0, self.keys))

    def init(self, terms, t0, t1, y0, args):
        if self.inner is None:
            return None
        e0, n0 = _split(y0, self.keys)
        return self.inner.init(self._inner_terms(terms, e0, t0), t0, t1, n0, args)

    def step(self, terms, t0, t1, y0, args, solver_state, made_jump):
        populations, hold, _ = args
        e0, n0 = _split(y0, self.keys)
        e1 = _advance(populations, e0, t1 - t0, hold, self.keys)
        dense = dict(exact0=e0, populations=populations, hold=hold)
        if self.inner is None:
            return _merge(e1, n0), None, dense, None, dfx.RESULTS.successful
        n1, n_err, n_dense, solver_state, result = self.inner.step(
            self._inner_terms(terms, e0, t0), t0, t1, n0, args, solver_state, made_jump)
        err = None if n_err is None else _merge(jtu.tree_map(jnp.zeros_like, e1), n_err)
        dense["numeric"] = n_dense
        return _merge(e1, n1), err, dense, solver_state, result

    def func(self, terms, t0, y0, args):
        return terms.vf(t0, y0, args)


class _NumericNorm(eqx.Module):
    """``norm`` (the options' error norm) over the numeric states only (the exact ones
    have no error)."""

    keys: tuple = eqx.field(static=True)
    norm: Callable = eqx.field(static=True)

    def __call__(self, tree):
        return self.norm(_split(tree, self.keys)[1])


# ------------------------------------------------------------ step-size control
class ExactStepController(dfx.AbstractStepSizeController):
    """Wraps ``inner`` (a PID controller on the numeric states, or ``None``: free steps)
    and rejects any step inside which an exactly solved spike condition crosses zero
    and comes back (module docs, "Not missing a spike").

    - ``two_modes``: spiking populations with ``EXACT_SPIKE`` whose condition depends on
      two states: the in-step maximum is found in closed form (:func:`two_mode_maximum`);
    - ``searched``: the other ``EXACT_SPIKE`` populations whose condition can have an
      interior maximum (more states, or exact states clamped while refractory): found
      by a safeguarded Newton iteration (:func:`searched_maximum`);
    - ``bounded``: populations whose condition depends on more than two states: steps
      at most half their shortest time constant;
    - ``dtmax``: bound on free steps (``None``: none).
    """

    inner: dfx.AbstractStepSizeController | None
    two_modes: tuple = eqx.field(static=True, default=())
    searched: tuple = eqx.field(static=True, default=())
    bounded: tuple = eqx.field(static=True, default=())
    dtmax: float | None = eqx.field(static=True, default=None)

    def wrap(self, direction):
        if self.inner is None:
            return self
        return eqx.tree_at(lambda c: c.inner, self, self.inner.wrap(direction))

    def _bound(self, args, dtype):
        h = jnp.asarray(jnp.inf if self.dtmax is None else self.dtmax, dtype)
        populations = jax.lax.stop_gradient(args[0])
        for p in self.bounded:
            fastest = jnp.max(jnp.stack([jnp.abs(r) for r in populations[p].spike_rates_all()]))
            h = jnp.minimum(h, 0.5 / fastest)
        return h

    def init(self, terms, t0, t1, y0, dt0, args, func, error_order):
        dtype = jnp.result_type(t0, t1)
        h = self._bound(args, dtype)
        if self.inner is None:
            if dt0 is not None:
                h = jnp.minimum(h, dt0)
            return jnp.minimum(t0 + h, t1), None
        tnext, state = self.inner.init(terms, t0, t1, y0, dt0, args, func, error_order)
        return jnp.minimum(tnext, t0 + h), state

    def adapt_step_size(self, t0, t1, y0, y1_candidate, args, y_error, error_order, controller_state):
        dtype = jnp.result_type(t0, t1)
        h = self._bound(args, dtype)
        if self.inner is None:
            keep, tprev, tnext, jump, state, result = (
                True, t1, t1 + h, False, None, dfx.RESULTS.successful)
        else:
            keep, tprev, tnext, jump, state, result = self.inner.adapt_step_size(
                t0, t1, y0, y1_candidate, args, y_error, error_order, controller_state)
            tnext = jnp.minimum(tnext, tprev + h)
        if not (self.two_modes or self.searched):
            return keep, tprev, tnext, jump, state, result
        found, t_stop = self._crossing_inside(t0, t1, y0, y1_candidate, args)
        reject = jnp.asarray(keep) & found
        keep = jnp.asarray(keep) & ~found
        tprev = jnp.where(reject, t0, tprev)
        tnext = jnp.where(reject, t_stop, tnext)
        if self.inner is not None:
            state = jtu.tree_map(lambda old, new: jnp.where(reject, old, new), controller_state, state)
        return keep, tprev, tnext, jump, state, result

    def _crossing_inside(self, t0, t1, y0, y1, args):
        """Does a watched term cross zero and come back inside ``(t0, t1)``; where to end the step."""
        populations, hold, watch = jax.lax.stop_gradient(args)
        y0, y1 = jax.lax.stop_gradient((y0, y1))
        h = t1 - t0
        best = jnp.asarray(jnp.inf, jnp.result_type(t0, t1))
        for p in self.two_modes + self.searched:
            find = two_mode_maximum if p in self.two_modes else searched_maximum
            found, tau = find(populations[p], y0[p], y1[p], hold.refractory[p],
                              dyn.Watch((watch.armed[p],), (watch.rearm[p],), (watch.margin[p],)), h)
            best = jnp.minimum(best, jnp.min(jnp.where(found, tau, jnp.inf), initial=jnp.inf))
        return jnp.isfinite(best), t0 + best


def _terms(pop, s, watch):
    return dyn.event_terms((pop,), (s,), watch)[0]


def _at(pop, s0, refractory, tau):
    """The state of ``pop`` after ``tau`` (one per neuron) by its closed form."""
    exact0 = {k: s0[k] for k in type(pop).EXACT_STATES}
    return {**s0, **pop.propagate(exact0, tau, refractory)}


def _inside(tau, h, dtype):
    """``0 < tau < h``, away from the end by rounding (a maximum at the step end is seen there)."""
    eps = jnp.finfo(dtype).eps
    return (tau > 0) & (h - tau > 1000 * eps * (1 + h))


def two_mode_maximum(pop: NeuronModel, s0, s1, refractory, watch: dyn.Watch, h):
    """Interior maxima of watched terms that depend on two exponential modes, in closed form.

    ``T'`` has at most one zero, at ``t*`` (:func:`_stationary_point`); if
    ``T'(0) >= 0`` it is a maximum. Returns ``(found, t*)`` per neuron: ``found``
    where the term is negative at both ends of the step and ``>= 0`` at ``t*``
    strictly inside it.
    """
    valid, star, d0 = _stationary_point(pop, s0, refractory, watch, h)
    armed, rearm = watch.armed[0], watch.rearm[0]
    candidate = ((armed | rearm) & valid & (d0 >= 0)
                 & (_terms(pop, s0, watch) < 0) & (_terms(pop, s1, watch) < 0))
    return candidate & (_terms(pop, _at(pop, s0, refractory, star), watch) >= 0), star


def searched_maximum(pop: NeuronModel, s0, s1, refractory, watch: dyn.Watch, h, steps: int = NEWTON_STEPS):
    """Interior maxima of watched terms, located by a safeguarded Newton iteration on ``T' = 0``.

    A maximum is bracketed where ``T'(0) >= 0 > T'(h)``; bisection keeps the
    bracket, Newton steps (with ``T''``, both derivatives of the closed form in
    time) converge fast. Returns ``(found, tau)`` as :func:`two_mode_maximum`.
    """
    dtype = watch.margin[0].dtype

    def term(tau):
        return _terms(pop, _at(pop, s0, refractory, tau), watch)

    def slope(tau):
        return jax.jvp(term, (tau,), (jnp.ones_like(tau),))[1]

    zero = jnp.zeros((pop.n,), dtype)
    end = jnp.broadcast_to(jnp.asarray(h, dtype), (pop.n,))
    d0 = slope(zero)
    d1 = slope(end)
    armed, rearm = watch.armed[0], watch.rearm[0]
    candidate = ((armed | rearm) & (d0 >= 0) & (d1 < 0)
                 & (_terms(pop, s0, watch) < 0) & (_terms(pop, s1, watch) < 0))

    def newton(_, carry):
        lo, hi, x = carry
        d, dd = jax.jvp(slope, (x,), (jnp.ones_like(x),))
        rising = d > 0
        lo = jnp.where(rising, x, lo)
        hi = jnp.where(rising, hi, x)
        concave = dd < 0
        guess = x - d / jnp.where(concave, dd, -jnp.ones_like(dd))
        inside = concave & (guess > lo) & (guess < hi)
        return lo, hi, jnp.where(inside, guess, 0.5 * (lo + hi))

    _, _, tau = jax.lax.fori_loop(0, steps, newton, (zero, end, 0.5 * end))
    return candidate & (term(tau) >= 0) & _inside(tau, h, dtype), tau


# ------------------------------------------------- networks solved in closed form
def _n_spike_states(pop) -> int:
    """How many states the spike condition of ``pop`` depends on (static)."""
    one = {k: jax.ShapeDtypeStruct(v.shape[1:], v.dtype) for k, v in pop.params.items()}
    return len(jax.eval_shape(pop.spike_rates, one))  # shapes only: a population may be empty


def closed_form_network(populations, options: SimOptions) -> bool:
    """Can :func:`integrate_closed_form` handle this network?

    Every state of every population is exact, and each spike condition depends on at
    most two states (so its in-step extremum has a closed form) that are not clamped
    while refractory.
    """
    keys = exact_keys(populations, options.get_integrator())
    for pop, ks in zip(populations, keys):
        model = type(pop)
        if not ks or set(ks) != set(model.state_names()):
            return False
        if model.SPIKING:
            if not model.EXACT_SPIKE or _n_spike_states(pop) > 2:
                return False
            if model.REFRACTORY and set(model.CLAMPED) & set(ks):
                return False
    return True


def _stationary_point(pop, s0, refractory, watch, h, margin: bool = True):
    """The zero of ``T'`` for a watched term ``T`` with two exponential modes.

    With ``T' = a exp(r1 t) + b exp(r2 t)`` (``r1, r2`` from ``spike_rates``),
    ``T'(0) = a + b`` and ``T''(0) = a r1 + b r2`` (derivatives along the vector
    field) give its only zero:

        ``t* = x log1p(x d) / (x d)``,  ``x = -T'(0) / (T''(0) - r2 T'(0))``,  ``d = r1 - r2``

    (``t* = x`` when ``r1 = r2``, where ``T' = (a + b t) exp(r t)``). Returns
    ``(valid, t*, T'(0))`` per neuron, ``valid`` where ``t*`` exists and lies
    strictly inside ``(0, h)`` (with ``margin``, away from ``h`` by more than
    rounding: see :func:`_inside`); ``t*`` is 0 elsewhere.
    """
    dtype = watch.margin[0].dtype

    def field(s):
        return dyn.vector_field((pop,), (s,), dyn.Hold((refractory,)))[0]

    def slope(s):
        return jax.jvp(lambda s_: _terms(pop, s_, watch), (s,), (field(s),))[1]

    d0, dd0 = jax.jvp(slope, (s0,), (field(s0),))
    rates = pop.spike_rates_all()
    if not rates:  # the condition is constant between events: no stationary point
        return jnp.zeros(d0.shape, bool), jnp.zeros_like(d0), d0
    r1, r2 = (rates[0], rates[0]) if len(rates) == 1 else rates
    den = dd0 - r2 * d0
    ok = den != 0
    x = -d0 / jnp.where(ok, den, jnp.ones_like(den))
    z = x * (r1 - r2)
    small = jnp.abs(z) < 1e-3
    safe = jnp.where(small | (z <= -1), jnp.ones_like(z), z)
    rel = jnp.where(small, 1 - z / 2 + z * z / 3 - z * z * z / 4, jnp.log1p(safe) / safe)
    tau = x * rel
    inside = _inside(tau, h, dtype) if margin else (tau > 0) & (tau < h)
    valid = ok & (z > -1) & jnp.isfinite(tau) & inside
    return valid, jnp.where(valid, tau, jnp.zeros_like(tau)), d0


def first_crossing(pop: NeuronModel, s0, refractory, watch: dyn.Watch, h, t0, rtol, atol):
    """Per neuron: does its watched term (negative at 0) reach zero within ``(0, h]``, and when.

    ``T'`` has at most one zero (two modes), at ``tau*`` (closed form). So ``T`` is
    monotone on ``[0, tau*]`` and on ``[tau*, h]``: the first crossing is in the first
    piece if ``T(tau*) >= 0`` at a maximum, else in the second if ``T(h) >= 0``. In
    that piece a safeguarded Newton iteration (bisection when Newton leaves the
    bracket) finds it to ``atol + rtol * |t0 + tau|``. Returns ``(found, tau)``.
    """
    dtype = watch.margin[0].dtype
    n = pop.n

    def term(tau):
        return _terms(pop, _at(pop, s0, refractory, tau), watch)

    end = jnp.broadcast_to(jnp.asarray(h, dtype), (n,))
    valid, star, d0 = _stationary_point(pop, s0, refractory, watch, h, margin=False)
    f0, f_star, f_end = _terms(pop, s0, watch), term(star), term(end)
    before = valid & (d0 >= 0) & (f_star >= 0)  # crossing before a maximum
    lo = jnp.where(valid & ~before, star, 0.0)
    hi = jnp.where(before, star, end)
    f_lo = jnp.where(valid & ~before, f_star, f0)
    f_hi = jnp.where(before, f_star, f_end)
    armed, rearm = watch.armed[0], watch.rearm[0]
    found = (armed | rearm) & (f0 < 0) & (f_lo < 0) & (f_hi >= 0)
    # start at the secant point of the bracket
    width = jnp.where(found, f_hi - f_lo, jnp.ones_like(f_hi))
    x = jnp.clip(lo - f_lo * (hi - lo) / width, lo, hi)

    def cond(carry):
        it, lo, hi, x, step = carry
        tol = atol + rtol * jnp.abs(t0 + x)
        return (it < 100) & jnp.any(found & (step > tol))

    def body(carry):
        it, lo, hi, x, _ = carry
        f, d = jax.jvp(term, (x,), (jnp.ones_like(x),))
        below = f < 0
        lo = jnp.where(below, x, lo)
        hi = jnp.where(below, hi, x)
        rising = d > 0
        guess = x - f / jnp.where(rising, d, jnp.ones_like(d))
        inside = rising & (guess > lo) & (guess < hi)
        new = jnp.where(inside, guess, 0.5 * (lo + hi))
        new = jnp.where(f == 0, x, new)
        step = jnp.where(f == 0, 0.0, jnp.minimum(jnp.abs(new - x), hi - lo))
        return it + 1, lo, hi, new, step

    init = (0, lo, hi, x, jnp.full((n,), jnp.inf, dtype))
    _, _, _, x, _ = jax.lax.while_loop(cond, body, init)
    return found, x


def integrate_closed_form(populations, y, t0, t1, hold, watch, options: SimOptions, dtype,
                          attach_gradient):
    """The event loop's integration step for a network solved entirely in closed form.

    Returns ``None`` unless :func:`closed_form_network`. Otherwise ``(t, y, hit, ok)``
    like :func:`eventax_dsl.sim.loop._integrate`: each watched neuron's first crossing
    is found on its closed form (:func:`first_crossing`), the earliest one stops the
    interval, and the state there is the closed form at that (detached) time;
    ``attach_gradient`` then adds the implicit-function-theorem derivative, exactly as
    on the Diffrax path. No ODE solver and no step-size control are involved.
    """
    if not closed_form_network(populations, options):
        return None
    keys = exact_keys(populations, options.get_integrator())
    finder = options.get_root_finder(dtype)
    default = 1e-12 if jnp.dtype(dtype) == jnp.float64 else 1e-6
    rtol = float(getattr(finder, "rtol", default))
    atol = float(getattr(finder, "atol", default))
    h = jax.lax.stop_gradient(t1 - t0)
    start = jax.lax.stop_gradient(t0)
    frozen = jax.lax.stop_gradient((populations, y, hold.refractory, watch))
    best = jnp.asarray(jnp.inf, dtype)
    spiking = False
    for p, pop in enumerate(frozen[0]):
        if not type(pop).SPIKING:
            continue
        spiking = True
        one = dyn.Watch((frozen[3].armed[p],), (frozen[3].rearm[p],), (frozen[3].margin[p],))
        found, tau = first_crossing(pop, frozen[1][p], frozen[2][p], one, h, start, rtol, atol)
        best = jnp.minimum(best, jnp.min(jnp.where(found, tau, jnp.inf), initial=jnp.inf))
    hit = jnp.isfinite(best)
    t_stop = jnp.where(hit, jax.lax.stop_gradient(t0 + jnp.where(hit, best, 0.0)), t1)
    y1 = _advance(populations, y, t_stop - t0, hold, keys)
    ok = jnp.asarray(True)
    if not spiking:
        return t_stop, y1, jnp.asarray(False), ok
    t_spike, y_spike = attach_gradient(populations, t_stop, y1, hold, watch, hit)
    t_out = jnp.where(hit, t_spike, t_stop)
    y_out = jtu.tree_map(lambda a, b: jnp.where(hit, a, b), y_spike, y1)
    return t_out, y_out, hit, ok


# ----------------------------------------------------------------------- choice
def solver_and_controller(populations, options: SimOptions, dtype):
    """The Diffrax solver and step-size controller for one integration interval.

    ``options.get_solver()`` / ``get_controller()`` when nothing is solved exactly
    (``integrator="numeric"``, or no population has ``EXACT_STATES``); otherwise
    :class:`ExactSolver` (with ``options.get_solver()`` for the numeric states, if
    any) and :class:`ExactStepController`.
    """
    keys = exact_keys(populations, options.get_integrator())
    if not any(keys):
        return options.get_solver(), options.get_controller(dtype)
    full = all(set(ks) == set(type(p).state_names()) for p, ks in zip(populations, keys))
    two_modes, searched, bounded = [], [], []
    for i, (p, ks) in enumerate(zip(populations, keys)):
        model = type(p)
        if not (model.SPIKING and model.EXACT_SPIKE and ks):
            continue
        n_states = _n_spike_states(p)
        clamps = model.REFRACTORY and set(model.CLAMPED) & set(ks)
        if n_states > 2:
            bounded.append(i)
        if n_states > 2 or (clamps and n_states > 1):
            searched.append(i)
        elif n_states == 2:
            two_modes.append(i)
        # one state: T' is one exponential (or constant), so T is monotone in every step
    guard = dict(two_modes=tuple(two_modes), searched=tuple(searched), bounded=tuple(bounded))
    if full:
        bounds = [x for x in (options.dtmax, options.dt) if x is not None]
        controller = ExactStepController(None, dtmax=min(bounds) if bounds else None, **guard)
        return ExactSolver(keys, None), controller
    inner = options.get_controller(dtype)
    if isinstance(inner, dfx.PIDController):
        inner = eqx.tree_at(lambda c: c.norm, inner, _NumericNorm(keys, options.get_error_norm()))
    return ExactSolver(keys, options.get_solver()), ExactStepController(inner, **guard)
