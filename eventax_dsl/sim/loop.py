"""The event loop: integrate the network between events, handle each event.

One loop iteration handles one *event*:

1. Look ahead: the next scheduled time is the earliest of the next input
   spike, the next end of a refractory period, the next observation time and
   ``t_end``. If some neuron is already above threshold (an input made its
   condition jump past zero, or it crossed within the root finder's tolerance
   of another spike), the next event is *now*.
2. Integrate the whole network towards that time, stopping early at the first
   upward zero crossing of ``max_j c_j`` (see :mod:`eventax_dsl.sim.dynamics`),
   located by a safeguarded Newton method
   (:class:`~eventax_dsl.sim.rootfind.SafeNewton`) on the solver's dense
   interpolation. By default (``SimOptions(stepping="single")``,
   :func:`_single_step`) this is *one* adaptive solver step: an iteration may
   end before the next scheduled time with nothing to handle, and the next
   iteration continues from there with the step the controller proposed. With
   ``stepping="solve"`` it is a whole :func:`diffrax.diffeqsolve` with a
   :class:`diffrax.Event` (its first step: the mean step of the previous solve,
   ``options.carry_step``). Crossings are *detected* by the sign at step ends:
   a condition that goes up and back down within one solver step is missed
   (bound the step with the ``dtmax`` option for such models).
3. If a spike stopped the solve, the neuron at the argmax spikes, together with
   every armed neuron whose condition is already ``>= 0`` (if the crossing was a
   re-arming, see below, nothing else happens). Spiking neurons are
   recorded, reset, start their refractory period, and their spikes are
   delivered to their targets through ``apply_input``.
   Otherwise the scheduled event happens: input spikes are delivered,
   observables recorded, or a refractory period simply ends (the mask that
   depends on it is recomputed at the start of the next iteration).

Only one kind of event is handled per iteration, spikes first; events at the
same time follow in later iterations with a zero-length solve. The simulation
covers ``[0, t_end]`` closed: it ends at ``t_end`` once everything due then has
happened (all inputs arriving at ``t_end``, and the spikes they cause).

Why one step per iteration: under ``jax.vmap`` a whole solve per event runs as
many steps as the batch's slowest sample needs *for that event*, every event
(256 copies of one Yin-Yang sample run 3.4-4.3x faster than 256 different
ones); single steps pad only the total count. (Cutting ``diffeqsolve`` short
with ``max_steps`` instead is not an option: when one batch element meets an
event and another's last step was rejected, Diffrax 0.7.2 returns that rejected
candidate as the latter's final state.)

Semantics in detail
-------------------
- A spike is an upward zero crossing of a neuron's condition. A neuron that
  spikes is *disarmed* until its condition falls below ``-margin`` (a small,
  automatically sized depth, see the body of :func:`simulate`): a reset that
  brings the condition well below zero re-arms it at once; a model without a
  reset (Hodgkin-Huxley) is re-armed by an event on the downward crossing; a
  reset that leaves the condition ``>= 0`` never re-triggers (except in a guarded
  refractory model, whose period ending is what re-arms it, see below). So one crossing
  is never counted twice, whatever the root finder's tolerance.
- An armed neuron whose condition is ``>= 0`` at the start of an interval
  spikes at once (an input made it jump, or it crossed within the root
  tolerance of another spike).
- Refractory neurons (``REFRACTORY``, for ``refractory_period`` after each
  spike): ``CLAMPED`` states have zero derivative, input to them is dropped
  (with ``KEEP_INPUT`` it is applied, but not to the ``CLAMPED`` states), and
  with ``GUARDED`` their condition is ignored -- so a guarded neuron that is above
  threshold when its refractory period ends spikes right then.
- ``amos``: a neuron that has spiked is never armed again; it is reset once and
  then held (all derivatives 0, input dropped), so no later input can drive a
  model whose upswing only the reset stops (Izhikevich, EIF) to a blow-up.
- Input spikes at the same time are summed (counts times weights) and
  delivered together; an input and a spike at the same time: the spike first.

Gradients
---------
Everything is ordinary JAX code, so reverse-mode autodiff runs through the loop:

- between events, through the solver steps (discretise-then-optimise, exact
  for the discrete solution; with ``stepping="solve"`` through Diffrax's
  ``RecursiveCheckpointAdjoint``);
- at a spike, by the implicit function theorem applied to
  ``c(y(t*; theta); theta) = 0``: ``dt*/dtheta = -(dc/dtheta) / (dc/dt)`` with
  ``dc/dt = grad c . f`` from the model's own vector field, and the state at the
  spike gets ``dy/dtheta|_t + f dt*/dtheta`` (:func:`_attach_spike_gradient`).
  The root found by the root finder is detached first (:func:`_detached_condition`), so
  nothing depends on the derivative of the dense interpolant, which is less
  accurate than the solution itself (measured: relative error 2e-7 on the
  derivative of a LIF spike time through Diffrax's own event gradient, 1e-16
  this way). This also sidesteps the wrong post-event state gradients of
  Diffrax issue #729, since no solve ever continues past an event;
- through ``apply_reset`` / ``apply_input``, which the model writes in JAX;
- the *choice* of which neuron spikes (an argmax) and the event order are
  discrete and have zero derivative, as they must.

The outer loop is ``equinox.internal.while_loop(kind="checkpointed")``
(reverse-mode differentiable, stops as soon as the simulation is over) or a
``lax.scan`` over the whole budget with a done flag (``options.loop``).

Budget and errors
-----------------
Shapes must be static, so the number of loop iterations is bounded by
:func:`event_budget`. Running out of budget is an error (never a silent
truncation), raised with :func:`equinox.branched_error_if` together with the
other run-time errors: a full spike buffer, a failed ODE solve, and NaN/Inf in a
state variable (named).

A caller that wants to *handle* a failure rather than stop on it passes
``check=False``: nothing is raised, and ``SimResult.status`` says what happened
(``OK`` = 0, or one of the codes below). :func:`status_error` turns the status
of one sample or of a whole batch into an exception on the host: a
:class:`BudgetExhausted` for a full spike buffer or event budget (a caller that
searches for a workable input scale can take that to mean "too much activity"),
a :class:`SimulationError` for anything else, each with the same message the
in-graph check gives::

    res = jax.vmap(lambda x: simulate(net, x, 50.0, check=False))(xs)
    err = status_error(res.status, res.messages)
    if err is not None:
        raise err  # err.index: the first failing sample; err.count: how many failed
"""

from __future__ import annotations

import diffrax as dfx
import equinox as eqx
import equinox.internal as eqxi
import jax
import jax.numpy as jnp
import numpy as np
import optimistix as optx

from . import dynamics as dyn
from . import exact
from .network import Network
from .options import DEFAULT_SPIKES_PER_NEURON, SimOptions, make_options
from .schedule import make_schedule

# ---------------------------------------------------------------- status codes
OK = 0
BUDGET = 1
SPIKE_BUFFER = 2
SOLVER = 3
NAN_BASE = 4  # NAN_BASE + k: state variable k (see dynamics.state_variable_names)

#: ``options.carry_step``: the first step (ms) of the first solve, and the shortest
#: first step ever carried over (the controller shortens or lengthens it from there).
FIRST_STEP = 1e-2
MIN_FIRST_STEP = 1e-6

#: Input spikes gathered per loop iteration (a larger group of simultaneous input
#: spikes takes several zero-length iterations; see the body of :func:`simulate`).
INPUT_CHUNK = 16


class SimResult(eqx.Module):
    """Everything one simulation returns (one sample).

    - ``t``: time at which the simulation stopped (``t_end``, or earlier when
      stopping once all outputs spiked).
    - ``state``: the network state at ``t`` (one dict per population).
    - ``first_spike``: per population, ``(n,)`` first spike times (``inf``: none).
    - ``n_spikes``: number of spikes (all populations).
    - ``spike_times``, ``spike_ids``: ``(max_spikes,)`` buffers in time order,
      padded with ``inf`` / ``-1``; ids are global (``net.offsets``). Empty
      (shape ``(0,)``) when spikes were not recorded.
    - ``observed``: ``{observable: (len(obs_times), n_out, ...)}`` for the
      output population, or ``None``.
    - ``n_events``: loop iterations used.
    - ``n_steps``: ODE solver steps taken between the events, accepted and
      rejected (0 for a network solved entirely in closed form): where the time goes.
    - ``status``: ``OK`` (0), or the code of the failure (module docs); only a
      simulation run with ``check=False`` returns a failure, the default raises it.
    - ``messages``: the message of each status code (static), for :func:`status_error`.
    """

    t: jax.Array
    state: tuple
    first_spike: tuple
    n_spikes: jax.Array
    spike_times: jax.Array
    spike_ids: jax.Array
    observed: dict | None
    n_events: jax.Array
    n_steps: jax.Array
    status: jax.Array
    messages: tuple[str, ...] = eqx.field(static=True)


class SimulationError(RuntimeError):
    """A simulation failed (see :func:`status_error`).

    ``status``: the failure's code; ``index``: the first failing sample (flat index
    into the status array); ``count``: how many samples failed.
    """

    def __init__(self, message: str, status: int, index: int = 0, count: int = 1):
        super().__init__(message)
        self.status, self.index, self.count = status, index, count


class BudgetExhausted(SimulationError):
    """The spike buffer or the event budget ran out: the network was more active
    than the simulation was sized for (options ``max_spikes`` / ``max_events``)."""


def status_error(status, messages) -> SimulationError | None:
    """The error for a (batch of) ``SimResult.status``, or ``None`` if every entry is ``OK``.

    ``status``: an integer array of any shape (one entry per sample), ``messages``:
    ``SimResult.messages``. The error describes the first failing entry.
    """
    flat = np.asarray(status).reshape(-1)
    bad = np.flatnonzero(flat != OK)
    if bad.size == 0:
        return None
    code = int(flat[bad[0]])
    cls = BudgetExhausted if code in (BUDGET, SPIKE_BUFFER) else SimulationError
    message = messages[code] if 0 <= code < len(messages) else f"unknown status {code}"
    return cls(message, code, int(bad[0]), int(bad.size))


class _Carry(eqx.Module):
    t: jax.Array
    y: tuple
    ptr: jax.Array
    pending: tuple
    obs_ptr: jax.Array
    refr_until: tuple
    armed: tuple
    margin: tuple
    first_spike: tuple
    n_spikes: jax.Array
    spike_times: jax.Array
    spike_ids: jax.Array
    observed: dict | None
    due: tuple
    done: jax.Array
    status: jax.Array
    n_events: jax.Array
    n_steps: jax.Array
    dt_carry: jax.Array


# ------------------------------------------------------------------- budget
def spike_budget(net: Network, options: SimOptions) -> int:
    """Spike buffer size: ``options.max_spikes``, else ``DEFAULT_SPIKES_PER_NEURON``
    per spiking neuron (exactly one per neuron with ``amos``)."""
    if options.max_spikes is not None:
        return options.max_spikes
    per = 1 if options.amos else DEFAULT_SPIKES_PER_NEURON
    return max(per * net.n_spiking, 1)


def event_budget(net: Network, options: SimOptions, n_inputs: int, n_obs: int) -> int:
    """Bound on loop iterations: ``options.max_events``, else

    ``n_inputs + n_obs + max_spikes * (3 if a population is refractory else 2) + 2``

    -- one iteration per input entry (``in_size * k``, absent ones included), per
    observation time, per spike (at most; simultaneous spikes share one), per
    re-arming of a neuron that is not reset below threshold (e.g. Hodgkin-Huxley),
    per end of a refractory period, and for reaching ``t_end``; plus, per spike, one
    delivery for every projection with axonal delays and ``n_dst`` for every
    projection with synaptic delays.
    """
    if options.max_events is not None:
        return options.max_events
    refractory = any(type(p).REFRACTORY for p in net.populations)
    per_spike = 3 if refractory else 2
    # a delayed projection delivers each spike once (axonal) or once per target (synaptic)
    for j, d in enumerate(net.delays or ()):
        if d is not None:
            per_spike += 1 if d.ndim == 1 else net.populations[net.projections[j][1]].n
    events = n_inputs + n_obs + spike_budget(net, options) * per_spike + 2
    if _iterates_per_step(net, options):
        events += options.max_solver_steps
    return events


def _iterates_per_step(net: Network, options: SimOptions) -> bool:
    """Does every solver step take a loop iteration of its own (``stepping="single"``
    on a network that needs a solver)?"""
    return options.stepping == "single" and not exact.closed_form_network(net.populations, options)


# -------------------------------------------------------------- integration
def _vf(t, y, args):
    populations, hold, _ = args
    return dyn.vector_field(populations, y, hold)


@jax.custom_jvp
def _detached_condition(t, y, args):
    """The earliest-crossing condition, whose derivative sees only time.

    Its value is ``max_j c_j(y)``; its JVP is ``dc/dt * t_dot`` with
    ``dc/dt = grad c . f(y)`` from the *model's* vector field, and ignores
    tangents of ``y`` and of the parameters. Diffrax's root finder uses the JVP
    for Newton's method (fine: it is the exact slope of the true trajectory), and
    Optimistix uses it for the implicit-function gradient of the root, which is
    therefore zero: the spike time returned by ``diffeqsolve`` is detached, and
    the state returned there is the dense interpolation at a *fixed* time,
    differentiated only through the solver steps. :func:`_attach_spike_gradient`
    then adds the exact implicit-function-theorem gradient.
    """
    populations, _, watch = args
    return dyn.earliest_condition(populations, y, watch)


@_detached_condition.defjvp
def _detached_condition_jvp(primals, tangents):
    t, y, args = primals
    t_dot = tangents[0]
    populations, hold, watch = args
    value, slope = _condition_and_slope(populations, y, hold, watch)
    return value, slope * t_dot


def _condition_and_slope(populations, y, hold, watch):
    """The event function ``c`` (:func:`~eventax_dsl.sim.dynamics.earliest_condition`)
    and ``dc/dt = grad c . f(y)``."""
    f = dyn.vector_field(populations, y, hold)
    return jax.jvp(lambda y_: dyn.earliest_condition(populations, y_, watch), (y,), (f,))


def _cond(t, y, args, **kwargs):
    return _detached_condition(t, y, args)


def _attach_spike_gradient(populations, t_hit, y_hit, hold, watch, hit):
    """Give the spike time and state their exact derivatives (implicit function theorem).

    At the spike ``c(y(t*, theta), theta) = 0``, so

    ``dt*/dtheta = -(dc/dtheta + grad c . dy/dtheta|_t) / (grad c . f(y))``.

    ``y_hit`` carries ``dy/dtheta`` at fixed time (see :func:`_detached_condition`),
    ``c`` its explicit parameter dependence. Both are collected by
    ``c - stop_gradient(c)`` (value 0, derivative the numerator), so

    ``t = t_hit - (c - sg(c)) / (dc/dt)``  (value ``t_hit``, derivative ``dt*/dtheta``)

    ``y = y_hit + f(y_hit) * (t - t_hit)``   (value ``y_hit``, derivative
    ``dy/dtheta|_t + f dt*/dtheta``, the total derivative of the state at the spike).

    The same holds for a re-arming crossing (the state is continuous there, the
    formula just moves the stopping time correctly). Where nothing was crossed
    (``hit`` false) both are returned unchanged. A grazing
    crossing (``dc/dt <= 0`` numerically) gets no time derivative.
    """
    t_hit = jax.lax.stop_gradient(t_hit)
    c, slope = _condition_and_slope(populations, y_hit, hold, watch)
    ok = hit & (slope > 0)
    safe = jnp.where(ok, slope, jnp.ones_like(slope))
    dt = jnp.where(ok, -(c - jax.lax.stop_gradient(c)) / safe, jnp.zeros_like(c))
    f = dyn.vector_field(populations, y_hit, hold)
    y = jax.tree_util.tree_map(lambda v, fv: v + fv * dt, y_hit, f)
    return t_hit + dt, y


def _integrate(net: Network, y, t0, t1, hold, watch, options: SimOptions, dtype,
               dt_carry=None):
    """Solve from ``t0`` towards ``t1``, stopping at the first watched crossing.

    Returns ``(t, y, hit, ok, dt_carry, steps)``: the stop time, the state there,
    whether a crossing (a spike or a re-arming) stopped the solve, whether the
    solver succeeded, the first step for the next solve (``options.carry_step``;
    the given ``dt_carry`` is this solve's first step, ``None``: Diffrax chooses)
    and the number of solver steps taken. At a spike, ``t`` and ``y`` carry the
    implicit-function-theorem derivatives (:func:`_attach_spike_gradient`).
    """
    populations = net.populations
    spiking = any(type(p).SPIKING for p in populations)
    # exact integration of the models' linear states where possible (sim/exact.py);
    # a network solved entirely in closed form needs no ODE solver at all
    closed = exact.integrate_closed_form(populations, y, t0, t1, hold, watch, options, dtype,
                                         attach_gradient=_attach_spike_gradient)
    if closed is not None:
        return (*closed, dt_carry, jnp.zeros((), jnp.int32))
    if options.stepping == "single":
        return _single_step(net, y, t0, t1, hold, watch, options, dtype, dt_carry)
    solver, controller = exact.solver_and_controller(populations, options, dtype)
    event = (
        dfx.Event(_cond, options.get_root_finder(dtype), direction=True) if spiking else None
    )
    sol = dfx.diffeqsolve(
        dfx.ODETerm(_vf),
        solver,
        t0,
        t1,
        options.dt if dt_carry is None else dt_carry,
        y,
        args=(populations, hold, watch),
        stepsize_controller=controller,
        event=event,
        max_steps=options.max_solver_steps,
        adjoint=options.get_adjoint(),
        throw=False,
        saveat=dfx.SaveAt(t1=True),
    )
    y1 = jax.tree_util.tree_map(lambda x: x[-1], sol.ys)
    t1 = sol.ts[-1]
    if dt_carry is not None:
        dt_carry = _next_first_step(dt_carry, t1 - t0, sol.stats)
    steps = jnp.asarray(sol.stats["num_steps"], jnp.int32)
    ok = (sol.result == dfx.RESULTS.successful) | (sol.result == dfx.RESULTS.event_occurred)
    if not spiking:
        return t1, y1, jnp.asarray(False), ok, dt_carry, steps
    hit = jnp.asarray(sol.event_mask)
    t_spike, y_spike = _attach_spike_gradient(populations, t1, y1, hold, watch, hit)
    t1 = jnp.where(hit, t_spike, t1)
    y1 = jax.tree_util.tree_map(lambda a, b: jnp.where(hit, a, b), y_spike, y1)
    return t1, y1, hit, ok, dt_carry, steps


def _single_step(net: Network, y, t0, t1, hold, watch, options: SimOptions, dtype, dt):
    """``stepping="single"``: at most one solver step from ``t0`` towards ``t1``.

    Returns ``(t, y, hit, ok, dt, steps)`` like :func:`_integrate`. The step is
    ``min(dt, t1 - t0)`` long; if the controller rejects it, ``t`` stays ``t0`` and
    ``dt`` shrinks; if the watched condition crosses zero upwards inside it, the
    crossing is located on the solver's dense interpolation (the root finder that
    Diffrax's event uses with ``stepping="solve"``; Newton's slope here is the
    interpolant's own derivative, the exact derivative of the function whose root
    is sought) and the step ends there. The next step starts from the
    controller's proposal, so consecutive iterations continue one solve.
    """
    populations = net.populations
    args = (populations, hold, watch)
    fixed = dt is None  # options.dt: constant steps
    if fixed:
        dt = jnp.asarray(options.dt, dtype)
    solver, controller = exact.solver_and_controller(populations, options, dtype)
    term = dfx.ODETerm(_vf)
    clipped = dt >= t1 - t0
    h = jnp.where(clipped, t1 - t0, dt)
    t_next = jnp.where(clipped, t1, t0 + h)  # exactly t1: the loop compares times with ==
    _, cstate = controller.init(term, t0, t_next, y, h, args, solver.func, solver.order(term))
    sstate = solver.init(term, t0, t_next, y, args)
    y1, y_err, dense, _, sres = solver.step(term, t0, t_next, y, args, sstate, False)
    keep, t_from, t_prop, _, _, cres = controller.adapt_step_size(
        t0, t_next, y, y1, args, y_err, solver.order(term), cstate)
    keep = jnp.asarray(keep) & (h > 0)
    ok = (sres == dfx.RESULTS.successful) & (cres == dfx.RESULTS.successful)
    # the next step the controller proposes (from t_next if accepted, else again from t0)
    proposal = jax.lax.stop_gradient(jnp.asarray(t_prop, dtype) - jnp.asarray(t_from, dtype))
    dt_new = jnp.where(keep & clipped, jnp.maximum(proposal, dt), proposal)
    # never below a few units in the last place of t: t0 + dt must move
    floor = jnp.maximum(MIN_FIRST_STEP, 16 * jnp.finfo(dtype).eps * jnp.abs(t0))
    # -- except that a rejected step is retried at the length the controller asks for,
    # if that moves t: ExactStepController asks for a step that ends at the maximum of an
    # exactly solved condition, and a longer one would contain it again, rejected forever
    retry = ~keep & (proposal > 0) & (t0 + proposal > t0)
    dt_new = jnp.where(h > 0, jnp.where(retry, proposal, jnp.maximum(dt_new, floor)), dt)
    # A step that produced NaN/Inf gets a NaN proposal (its error is NaN): retry a
    # quarter as long (the step may have run into a blow-up that a shorter one avoids),
    # and once even the shortest step fails, stop with the NaN error naming the state
    # variable (instead of standing still until the event budget runs out). (An infinite
    # proposal is fine: the exact integrators' free steps.)
    broken = (h > 0) & jnp.isnan(proposal)
    stuck = broken & (h <= floor)
    dt_new = jnp.where(broken, jnp.maximum(0.25 * h, floor), dt_new)
    steps = jnp.where(h > 0, 1, 0).astype(jnp.int32)
    if fixed:
        dt_new = None
        stuck = jnp.asarray(False)
    # the solver failed without a NaN in the state to show: its general error
    ok = ok & ~(stuck & ~jnp.any(dyn.non_finite(y1)))
    # A step of length 0 (an event due at the current time, e.g. an input at t = 0) is
    # taken too: its end has the value of t0 and y, and the gradient of the event's time
    # (y1 = y + (t1 - t0) sum_i b_i f(y) = y, whose derivative by t1 is f(y)).
    taken = keep | (h == 0) | stuck  # a stuck step returns its NaN state, to be reported
    t_out = jnp.where(taken, t_next, t0)
    y_out = jax.tree_util.tree_map(lambda a, b: jnp.where(taken, a, b), y1, y)
    if not any(type(p).SPIKING for p in populations):
        return t_out, y_out, jnp.asarray(False), ok, dt_new, steps
    c0 = dyn.earliest_condition(populations, y, watch)
    c1 = dyn.earliest_condition(populations, y1, watch)
    hit = keep & (c0 < 0) & (c1 >= 0)
    interp = solver.interpolation_cls(t0=t0, t1=t_next, **dense)
    f_interp, (f_pops, _, f_watch) = jax.lax.stop_gradient((interp, args))

    def located():
        def fn(t, _):
            return dyn.earliest_condition(f_pops, f_interp.evaluate(t), f_watch)

        lo, hi = jax.lax.stop_gradient((t0, t_next))
        # Under vmap the root finder's loop runs until the slowest sample has
        # converged: a sample without a crossing gets the empty bracket
        # [t_next, t_next] and stops after one iteration (instead of bisecting a
        # bracket without a sign change down to the tolerance), and a sample with
        # one starts from the secant through the step's end values.
        lo = jnp.where(hit, lo, hi)
        c_lo, c_hi = jax.lax.stop_gradient((c0, c1))
        frac = jnp.where(hit, -c_lo / jnp.where(hit, c_hi - c_lo, 1.0), 1.0)
        start = lo + jnp.clip(frac, 0.0, 1.0) * (hi - lo)
        sol = optx.root_find(fn, options.get_root_finder(dtype), start,
                             options=dict(lower=lo, upper=hi), throw=False)
        return jnp.where(hit, sol.value, t_next)

    t_hit = jax.lax.cond(eqxi.unvmap_any(hit), located, lambda: jax.lax.stop_gradient(t_next))
    y_hit = interp.evaluate(t_hit)
    t_spike, y_spike = _attach_spike_gradient(populations, t_hit, y_hit, hold, watch, hit)
    t_out = jnp.where(hit, t_spike, t_out)
    y_out = jax.tree_util.tree_map(lambda a, b: jnp.where(hit, a, b), y_spike, y_out)
    return t_out, y_out, hit, ok, dt_new, steps


def _lag(arriving, times):
    """``times - stop_gradient(times)`` where ``arriving``, else 0: the value is exactly
    0, the derivative that of each arrival's own time (see :func:`_own_arrival_times`)."""
    safe = jnp.where(arriving, times, jnp.zeros_like(times))
    return jnp.where(arriving, safe - jax.lax.stop_gradient(safe), jnp.zeros_like(safe))


def _own_arrival_times(net, y_pre, y_post, t1, direct, shifts, blocked, held, hold):
    """Give each of several inputs that arrive at once the derivative of its own time.

    Inputs (or delayed arrivals) at the same time are summed and applied once, at ``t1``,
    whose derivative is that of one of them (the first input of the group; for tied
    delayed arrivals, ``jnp.min`` splits it evenly). An input of weight ``w_j`` that
    arrives ``delta_j`` later than ``t1`` would change the state after the event by
    ``(f(y-) - f(y+)) delta_j = -J_f M w_j delta_j`` to first order (``f`` the vector
    field, ``J_f`` its Jacobian, ``M`` the input rule's weight matrix: affine in the
    weights by the model contract). So this adds

    ``-J_f(y-) M sum_j w_j (delta_j)``, ``delta_j = (t_j - sg t_j) - (t1 - sg t1)``,

    whose value is exactly 0 and whose derivative moves each input's share of the jump
    with its own time. The total over a group that moves together is unchanged (the
    deltas vanish); the split is exact where ``f`` is linear along the jump (a synaptic
    current, a leaky voltage), and its first-order linearisation otherwise. A lone input
    has ``delta = 0``: nothing changes.
    """
    step = t1 - jax.lax.stop_gradient(t1)
    moved = {j: ({k: v - direct[j][0][k] * step for k, v in lag.items()}, direct[j][1])
             for j, lag in shifts.items()}
    shifted = dyn.deliver(net, y_pre, {}, blocked, moved, held=held)
    u = jax.tree_util.tree_map(jnp.subtract, shifted, y_pre)  # value 0: M sum_j w_j delta_j
    return jax.tree_util.tree_map(jnp.add, y_post, _jump_moved(net.populations, hold, y_pre, u))


@jax.custom_jvp
def _jump_moved(populations, hold, y, u):
    """``-J_f(y) u`` for a ``u`` whose value is 0 (:func:`_own_arrival_times`): the value
    is zeros without evaluating anything, the derivative ``-J_f(y) du``."""
    return jax.tree_util.tree_map(jnp.zeros_like, y)


@_jump_moved.defjvp
def _jump_moved_jvp(primals, tangents):
    populations, hold, y, u = primals
    u_dot = tangents[3]
    _, jf = jax.jvp(lambda y_: dyn.vector_field(populations, y_, hold), (y,), (u_dot,))
    return _jump_moved(populations, hold, y, u), jax.tree_util.tree_map(jnp.negative, jf)


def _eligible(pops, refractory, spent) -> tuple:
    """The neurons that may spike: of a spiking model, not spent (``amos``), and not
    refractory where the model's condition is guarded (``and not refractory``)."""
    out = []
    for p, refr, gone in zip(pops, refractory, spent or (None,) * len(pops)):
        e = jnp.full((p.n,), type(p).SPIKING)
        if gone is not None:
            e = e & ~gone
        if type(p).REFRACTORY and type(p).GUARDED:
            e = e & ~refr
        out.append(e)
    return tuple(out)


def _earlier(a, b):
    """``min(a, b)``, but all of ``a`` (its value and its gradient) when they are equal."""
    return jnp.where(b < a, b, a)


def _next_first_step(dt0, span, stats):
    """The first step of the next solve (``options.carry_step``), from this one's.

    After several accepted steps, or a rejected first try, their mean length
    (``span / accepted``: the last step may have been cut short by the end of the
    interval or by a spike, so this errs short); after a single accepted step
    that reached the end, the interval was shorter than a step, so ``dt0`` is
    kept (or the span, if longer). Never below ``MIN_FIRST_STEP``; no gradient
    (the step sizes are not differentiated, as in Diffrax).
    """
    n_acc, n_rej = stats["num_accepted_steps"], stats["num_rejected_steps"]
    mean = span / jnp.maximum(n_acc, 1).astype(span.dtype)
    nxt = jnp.where((n_acc >= 2) | (n_rej > 0), mean, jnp.maximum(dt0, span))
    return jax.lax.stop_gradient(jnp.maximum(nxt, MIN_FIRST_STEP))


# --------------------------------------------------------------------- loop
def simulate(
    net: Network,
    input_times,
    t_end,
    *,
    options: SimOptions | None = None,
    obs_times=None,
    stop_when_output_spiked: bool = False,
    record_spikes: bool = True,
    check: bool = True,
    **kwargs,
) -> SimResult:
    """Simulate ``net`` on one sample from ``t = 0`` to ``t_end``.

    - ``input_times``: ``(in_size,)`` or ``(in_size, k)``, ``inf`` = absent.
    - ``obs_times``: optional times (any order, ``>= 0``, at most ``t_end``) at
      which to record the output population's observables (recorded before
      inputs arriving at that instant).
    - ``stop_when_output_spiked``: stop as soon as every output neuron spiked;
      observation times after that stay ``NaN`` (the TTFS read-out relies on this).
    - ``record_spikes``: keep the spike buffers (else they have size 0).
    - ``check``: raise on a failure (an exhausted budget, a failed solve, NaN/Inf);
      with ``False`` nothing is raised and ``SimResult.status`` tells (module docs).
    - ``options`` / ``**kwargs``: :class:`~eventax_dsl.sim.options.SimOptions`.
    """
    opts = make_options(options, **kwargs)
    pops = net.populations
    # the network's float dtype: of its parameters, or its weights where a model has none
    leaves = jax.tree_util.tree_leaves(([p.params for p in pops], net.weights))
    dtype = leaves[0].dtype if leaves else jnp.result_type(float)
    if dtype != jnp.result_type(float) and any(type(p).SPIKING for p in pops):
        raise ValueError(
            f"eventax_dsl.sim: the network is {dtype} but JAX's default float is "
            f"{jnp.result_type(float)}. The precision follows jax_enable_x64: build the "
            "network with the default dtype, or run float32 with x64 disabled "
            "(`with jax.enable_x64(False): ...`). (Diffrax's event root-finding "
            "mixes in a default-precision literal.)"
        )
    sched = make_schedule(input_times, net.in_size, dtype)
    # The external input is delivered by gathering the weight rows of its sources,
    # at most `width` per loop iteration (InputSchedule.chunk); a larger group of
    # simultaneous input spikes is summed in `pending` over several zero-length
    # iterations and applied once, when it is complete.
    width = max(1, min(sched.size, INPUT_CHUNK))
    inputs = tuple(
        (j, dst, net.effective_weights(j), net.masks[j])
        for j, (src, dst) in enumerate(net.projections) if src == -1
    )
    pending0 = tuple(
        ({k: jnp.zeros(w.shape[1:], dtype) for k, w in weights.items()},
         jnp.zeros((pops[dst].n,), bool),
         {k: jnp.zeros(w.shape[1:], dtype) for k, w in weights.items()})
        for _, dst, weights, _ in inputs
    )
    t_end = jnp.asarray(t_end, dtype)
    obs_order = None
    if obs_times is not None:
        obs_times = jnp.asarray(obs_times, dtype)
        if obs_times.ndim != 1:
            raise ValueError(f"times must be 1-D, got shape {obs_times.shape}")
        # A time after t_end would never be reached and keep its NaN.
        obs_times = eqx.error_if(
            obs_times,
            ~(obs_times >= 0) | ~jnp.isfinite(obs_times) | (obs_times > t_end),
            "observation times must be finite, >= 0 and at most t_end",
        )
        # Record in ascending order, hand back in the caller's order.
        obs_order = jnp.argsort(obs_times)
        obs_times = obs_times[obs_order]
    n_obs = 0 if obs_times is None else int(obs_times.shape[0])
    max_spikes = spike_budget(net, opts)
    budget = event_budget(net, opts, sched.size, n_obs)
    buffer = max_spikes if record_spikes else 0
    refr_periods = tuple(
        p.refractory_periods() if type(p).REFRACTORY else None for p in pops
    )
    out_idx = net.output
    root_rtol, root_atol = _root_tolerances(opts, dtype)
    floor = float(np.sqrt(np.finfo(dtype).eps))
    gid = tuple(jnp.arange(p.n, dtype=jnp.int32) + o for p, o in zip(pops, net.offsets))
    # Delayed projections: row k of `due[i]` holds the arrival time of spike k (the spike
    # buffer's numbering) if projection delayed[i] carries it -- one time (axonal) or one
    # per target (synaptic) -- inf otherwise and once delivered; `source[i][k]` is its
    # local source index.
    delayed = tuple(j for j in range(len(net.projections)) if net.delay(j) is not None)
    axonal = {j: net.delay(j).ndim == 1 for j in delayed}
    due_rows = max_spikes if delayed else 0
    source = jnp.zeros((due_rows,), jnp.int32)

    y0 = dyn.initial_state(net)
    if obs_times is None:
        observed = None
    else:
        shapes = jax.eval_shape(pops[out_idx].observables, y0[out_idx])
        observed = {
            k: jnp.full((n_obs, *v.shape), jnp.nan, v.dtype) for k, v in shapes.items()
        }
    full = lambda n, v: jnp.full((n,), v, dtype)
    init = _Carry(
        t=jnp.zeros((), dtype),
        y=y0,
        ptr=jnp.zeros((), jnp.int32),
        pending=pending0,
        obs_ptr=jnp.zeros((), jnp.int32),
        refr_until=tuple(full(p.n, -jnp.inf) for p in pops),
        armed=tuple(jnp.ones((p.n,), bool) for p in pops),
        margin=tuple(full(p.n, 0.0) for p in pops),
        first_spike=tuple(full(p.n, jnp.inf) for p in pops),
        n_spikes=jnp.zeros((), jnp.int32),
        spike_times=full(buffer, jnp.inf),
        spike_ids=jnp.full((buffer,), -1, jnp.int32),
        observed=observed,
        due=tuple((jnp.full((due_rows,) if axonal[j] else (due_rows, pops[net.projections[j][1]].n),
                            jnp.inf, dtype), source)
                  for j in delayed),
        done=jnp.asarray(False),
        status=jnp.asarray(OK, jnp.int32),
        n_events=jnp.zeros((), jnp.int32),
        n_steps=jnp.zeros((), jnp.int32),
        dt_carry=(jnp.asarray(FIRST_STEP, dtype)
                  if (opts.carry_step or opts.stepping == "single") and opts.dt is None
                  else None),
    )

    def _spent(first_spike):
        """With ``amos``: the neurons that have spiked (held, see :class:`~.dynamics.Hold`)."""
        return tuple(jnp.isfinite(fs) for fs in first_spike) if opts.amos else None

    def body(c: _Carry) -> _Carry:
        t = c.t
        refractory = tuple(r > t for r in c.refr_until)
        spent = _spent(c.first_spike)
        hold = dyn.Hold(refractory, spent)
        # the neurons that may still spike (with amos: those that have not yet)
        unspent = (tuple(jnp.ones((p.n,), bool) for p in pops) if spent is None
                   else tuple(~s for s in spent))
        cond = dyn.conditions(pops, c.y)
        eligible = _eligible(pops, refractory, spent)
        # Re-arm disarmed neurons whose condition is now clearly negative (half
        # the margin: hysteresis against the root finder's tolerance).
        armed_now = tuple(
            a | (cv < -0.5 * m) for a, cv, m in zip(c.armed, cond, c.margin)
        )
        immediate = tuple(e & a & (cv >= 0) for e, a, cv in zip(eligible, armed_now, cond))
        watch = dyn.Watch(
            armed=tuple(e & a & (cv < 0) for e, a, cv in zip(eligible, armed_now, cond)),
            rearm=tuple(
                jnp.full((p.n,), type(p).SPIKING) & ~a & u
                for p, a, u in zip(pops, armed_now, unspent)
            ),
            margin=c.margin,
        )
        any_now = jnp.any(jnp.stack([jnp.any(m) for m in immediate]))

        # ---- the next scheduled time: the earliest of the input, the delayed arrivals,
        # the ends of refractory periods, the observation times and t_end. On a tie the
        # time listed first is taken whole (_earlier), so that a time that depends on
        # the parameters or inputs passes its gradient on rather than sharing it with a
        # constant (jnp.minimum gives each half).
        t_in = sched.time_at(c.ptr)
        t_due = jnp.min(jnp.stack([jnp.min(d, initial=jnp.inf) for d, _ in c.due]),
                        initial=jnp.inf) if delayed else jnp.inf
        t_next = _earlier(t_in, t_due)
        for r in c.refr_until:
            t_next = _earlier(t_next, jnp.min(jnp.where(r > t, r, jnp.inf), initial=jnp.inf))
        if obs_times is not None:
            safe = jnp.minimum(c.obs_ptr, n_obs - 1)
            t_obs = jnp.where(c.obs_ptr < n_obs, obs_times[safe], jnp.inf)
            t_next = _earlier(t_next, t_obs)
        t_next = _earlier(t_next, t_end)
        # an event due now (an input at t = 0): its own time, not the current one
        t_stop = jnp.where(any_now, t, jnp.where(t > t_next, t, t_next))

        # ---- integrate to it, or to the first spike
        t_hit, y1, hit, ok, dt_carry, steps = _integrate(net, c.y, t, t_stop, hold, watch,
                                                         opts, dtype, c.dt_carry)
        hit = hit & ~any_now
        # one solver step may end before t_stop: it returns where it ended (t when
        # something spikes now, as then the step has length 0)
        t1 = t_hit if opts.stepping == "single" else jnp.where(hit, t_hit, t_stop)

        # ---- who spikes: the crossing term (if it is a spike, not a re-arming),
        # and every armed neuron already past threshold (within root tolerance).
        cond1 = dyn.conditions(pops, y1)
        terms = dyn.event_terms(pops, y1, watch)
        valid = tuple(a | r for a, r in zip(watch.armed, watch.rearm))
        first = dyn.argmax_mask(terms, valid)
        spiked = tuple(
            jnp.where(any_now, im, hit & a & (f | (cv >= 0)))
            for im, a, f, cv in zip(immediate, watch.armed, first, cond1)
        )
        any_spike = jnp.any(jnp.stack([jnp.any(m) for m in spiked]))

        # ---- record spikes
        flat = jnp.concatenate(spiked)
        n_new = jnp.sum(flat, dtype=jnp.int32)
        # this iteration's spikes are numbers n_spikes + rank in the spike buffer's order
        # (also the rows of the delayed projections' arrival tables)
        rank = jnp.cumsum(flat, dtype=jnp.int32) - 1
        spike_times, spike_ids = c.spike_times, c.spike_ids
        if buffer:
            idx = jnp.where(flat, c.n_spikes + rank, buffer)
            spike_times = spike_times.at[idx].set(t1, mode="drop")
            spike_ids = spike_ids.at[idx].set(jnp.concatenate(gid), mode="drop")
        n_spikes = c.n_spikes + n_new
        first_spike = tuple(
            jnp.where(s & ~jnp.isfinite(fs), t1, fs) for s, fs in zip(spiked, c.first_spike)
        )
        refr_until = tuple(
            r if T is None else jnp.where(s, t1 + T, r)
            for s, r, T in zip(spiked, c.refr_until, refr_periods)
        )

        # ---- scheduled events (only when nobody spiked)
        is_input = ~any_spike & (t1 == t_in)
        observed_new = c.observed
        obs_ptr = c.obs_ptr
        if obs_times is not None:
            is_obs = ~any_spike & (t1 == t_obs)
            vals = pops[out_idx].observables(y1[out_idx])
            at = is_obs & (obs_times == t_obs)
            observed_new = {
                k: dyn._select(at, jnp.broadcast_to(vals[k], v.shape), v)
                for k, v in c.observed.items()
            }
            obs_ptr = obs_ptr + jnp.where(is_obs, jnp.sum(obs_times == t_obs, dtype=jnp.int32), 0)

        # ---- delayed projections: deliver what is due now (only when nobody
        # spiked), then queue the new spikes' arrivals
        direct, due, shifts = {}, [], {}
        for j, (arrive, src_of) in zip(delayed, c.due):
            src, dst = net.projections[j]
            now = ~any_spike & (arrive == t1)  # (rows,) or (rows, n_dst)
            w, mask = net.effective_weights(j), net.masks[j]
            times = t1 + net.delay(j)  # (n_src,) axonal, (n_src, n_dst) synaptic
            lag = _lag(now, arrive)
            if axonal[j]:  # arrivals per source neuron, delivered like immediate spikes
                counts = jax.ops.segment_sum(now.astype(dtype), src_of, pops[src].n)
                lags = jax.ops.segment_sum(lag, src_of, pops[src].n)
                reach = (jnp.broadcast_to(jnp.any(now), (pops[dst].n,)) if mask is None
                         else (counts @ mask) > 0)
                direct[j] = ({k: jnp.tensordot(counts, v, axes=1) for k, v in w.items()}, reach)
                shifts[j] = {k: jnp.tensordot(lags, v, axes=1) for k, v in w.items()}
            else:
                direct[j] = ({k: jnp.einsum("rd,rd...->d...", now.astype(dtype), v[src_of])
                              for k, v in w.items()}, jnp.any(now, axis=0))
                shifts[j] = {k: jnp.einsum("rd,rd...->d...", lag, v[src_of]) for k, v in w.items()}
                if mask is not None:  # no synapse, no arrival
                    times = jnp.where(mask > 0, times, jnp.inf)
            arrive = jnp.where(now, jnp.inf, arrive)
            lo = net.offsets[src]
            row = jnp.where(spiked[src], c.n_spikes + rank[lo:lo + pops[src].n], due_rows)
            arrive = arrive.at[row].set(times, mode="drop")
            src_of = src_of.at[row].set(jnp.arange(pops[src].n, dtype=jnp.int32), mode="drop")
            due.append((arrive, src_of))

        # ---- apply: reset, then deliver spikes and inputs
        y2 = dyn.reset(pops, y1, spiked)
        sources = {p: s.astype(dtype) for p, s in enumerate(spiked) if type(pops[p]).SPIKING}
        in_times, src_idx, valid, n_take, complete = sched.chunk(c.ptr, t_in, width)
        take = (valid & is_input).astype(dtype)
        lag = _lag(valid & is_input, in_times)
        apply_now = is_input & complete
        pending = []
        for (j, dst, weights, mask), (sums, reach, lags) in zip(inputs, c.pending):
            sums = {k: sums[k] + jnp.tensordot(take, w[src_idx], axes=1) for k, w in weights.items()}
            lags = {k: lags[k] + jnp.tensordot(lag, w[src_idx], axes=1) for k, w in weights.items()}
            if mask is None:
                reach = reach | (n_take > 0) & is_input
            else:
                reach = reach | ((take @ mask[src_idx].astype(dtype)) > 0)
            direct[j] = ({k: jnp.where(apply_now, v, 0.0) for k, v in sums.items()}, reach & apply_now)
            shifts[j] = {k: jnp.where(apply_now, v, 0.0) for k, v in lags.items()}
            keep = is_input & ~complete
            pending.append(({k: jnp.where(keep, v, 0.0) for k, v in sums.items()}, reach & keep,
                            {k: jnp.where(keep, v, 0.0) for k, v in lags.items()}))
        refractory1 = tuple(
            (r > t1) if type(p).REFRACTORY else jnp.zeros((p.n,), bool)
            for p, r in zip(pops, refr_until)
        )
        # refractory neurons drop their input, unless the model keeps it
        blocked = tuple(jnp.zeros_like(r) if type(p).KEEP_INPUT else r
                        for p, r in zip(pops, refractory1))
        spent = _spent(first_spike)
        if spent is not None:  # amos: a neuron that has spiked takes no more input
            blocked = tuple(b | s for b, s in zip(blocked, spent))
        y_pre = y2
        y2 = dyn.deliver(net, y2, sources, blocked, direct, held=refractory1)
        if shifts:
            y2 = _own_arrival_times(net, y_pre, y2, t1, direct, shifts, blocked, refractory1,
                                    dyn.Hold(refractory1, spent))
        ptr = c.ptr + jnp.where(is_input, n_take, 0)

        # ---- disarm the neurons that spiked, until their condition falls below
        # -margin: the margin is 100x what the root tolerance leaves of the
        # condition (|dc/dt| * time tolerance), so a crossing is never counted
        # twice, plus a relative floor.
        tol = root_atol + root_rtol * jnp.abs(t1)
        slopes = dyn.condition_slopes(pops, y2, dyn.Hold(refractory1, spent))
        cond2 = dyn.conditions(pops, y2)
        margin = tuple(
            jnp.where(s, jax.lax.stop_gradient(
                100.0 * jnp.abs(d) * tol + floor * (1.0 + jnp.abs(cv))), m)
            for s, d, cv, m in zip(spiked, slopes, cond2, c.margin)
        )
        # A guarded neuron with a refractory period stays armed: the guard keeps it from
        # spiking again until the period ends, and then it spikes at once if it is still
        # past threshold (the reset did not take it below, or input brought it back).
        armed = tuple(
            a & ~(s & (T <= 0)) if type(p).GUARDED and T is not None else a & ~s
            for p, a, s, T in zip(pops, armed_now, spiked, refr_periods)
        )

        # ---- termination and errors: at t_end, once nothing more happens at t_end (the
        # rest of a group of inputs arriving then, and the spikes they cause)
        due_now = jnp.any(jnp.stack([
            jnp.any(e & a & (cv >= 0))
            for e, a, cv in zip(_eligible(pops, refractory1, spent), armed, cond2)]))
        done = ~any_spike & (t1 >= t_end) & ~(is_input & ~complete) & ~due_now
        if stop_when_output_spiked:
            done = done | jnp.all(jnp.isfinite(first_spike[out_idx]))
        bad = dyn.non_finite(y2)
        status = jnp.where(ok, OK, SOLVER)
        if bad.shape[0]:
            status = jnp.where(
                (status == OK) & jnp.any(bad), NAN_BASE + jnp.argmax(bad), status
            )
        if buffer or due_rows:
            status = jnp.where((status == OK) & (n_spikes > max(buffer, due_rows)), SPIKE_BUFFER,
                               status)
        status = jnp.where(c.status == OK, status, c.status).astype(jnp.int32)
        return _Carry(
            t=t1,
            y=y2,
            ptr=ptr,
            pending=tuple(pending),
            obs_ptr=obs_ptr,
            refr_until=refr_until,
            armed=armed,
            margin=margin,
            first_spike=first_spike,
            n_spikes=n_spikes,
            spike_times=spike_times,
            spike_ids=spike_ids,
            observed=observed_new,
            due=tuple(due),
            done=done | (status != OK),
            status=status,
            n_events=c.n_events + 1,
            n_steps=c.n_steps + steps,
            dt_carry=dt_carry,
        )

    final = _run_loop(body, init, budget, opts.loop)
    status = jnp.where((final.status == OK) & ~final.done, BUDGET, final.status)
    messages = _messages(net, budget, max_spikes, opts)
    observed = final.observed
    if observed is not None:
        inverse = jnp.argsort(obs_order)
        observed = {k: v[inverse] for k, v in observed.items()}
    result = SimResult(
        t=final.t,
        state=final.y,
        first_spike=final.first_spike,
        n_spikes=final.n_spikes,
        spike_times=final.spike_times,
        spike_ids=final.spike_ids,
        observed=observed,
        n_events=final.n_events,
        n_steps=final.n_steps,
        status=status.astype(jnp.int32),
        messages=tuple(messages),
    )
    if not check:
        return result
    # Attach the check to *every* output: an error_if whose result is unused would
    # be dead-code-eliminated under jit.
    return eqx.branched_error_if(result, status != OK, status, messages)


def _root_tolerances(opts: SimOptions, dtype) -> tuple[float, float]:
    finder = opts.get_root_finder(dtype)
    return float(getattr(finder, "rtol", 1e-8)), float(getattr(finder, "atol", 1e-8))


def _run_loop(body, init: _Carry, budget: int, kind: str) -> _Carry:
    if kind == "checkpointed":
        return eqxi.while_loop(
            lambda c: ~c.done, body, init, max_steps=budget, kind="checkpointed"
        )

    def step(c, _):
        return jax.lax.cond(c.done, lambda c: c, body, c), None

    final, _ = jax.lax.scan(step, init, None, length=budget)
    return final


def _messages(net: Network, budget: int, max_spikes: int, opts: SimOptions) -> list[str]:
    models = ", ".join(sorted({type(p).NAME for p in net.populations}))
    msgs = [""] * NAN_BASE
    msgs[OK] = "no error"
    msgs[BUDGET] = (
        f"eventax_dsl.sim: the event budget of {budget} loop iterations was exhausted "
        f"before the end of the simulation (models: {models}). Raise it with the "
        f"option max_events=... (currently {opts.max_events}) or max_spikes=... "
        f"(currently {max_spikes} spikes); each input spike, observation time, spike "
        f"re-arming and refractory end uses one iteration"
        + (f", and so does each solver step: max_solver_steps=... (currently "
           f"{opts.max_solver_steps}) bounds the solver steps of the whole simulation "
           f"with stepping='single'." if _iterates_per_step(net, opts) else ".")
    )
    msgs[SPIKE_BUFFER] = (
        f"eventax_dsl.sim: more than max_spikes={max_spikes} spikes occurred; the "
        f"spike buffer is full. Raise it with the option max_spikes=..."
    )
    msgs[SOLVER] = (
        f"eventax_dsl.sim: the ODE solver failed between two events (models: {models}): "
        f"it reached max_solver_steps={opts.max_solver_steps} or the step size "
        f"collapsed. Common causes: NaN/Inf in a model's dynamics, a very stiff "
        f"model (loosen rtol/atol or raise max_solver_steps)."
    )
    for name in dyn.state_variable_names(net):
        msgs.append(
            f"eventax_dsl.sim: NaN or Inf in {name}. Check the model's dynamics, "
            f"reset and input rules for this variable (division by zero, log/sqrt "
            f"of a negative number, overflow)."
        )
    return msgs
