"""Quadrature states: integrals of an observable, computed by the ODE solver itself.

The voltage losses (:mod:`eventax_dsl.train.losses`) need ``int V(t) dt`` and
``int V(t) exp(-t / tau) dt`` over a window. A Riemann sum over sampled voltages
would be only as accurate as its grid; instead :func:`with_quadrature` adds
states to a neuron model, integrated with the rest of the network to the
adaptive solver's tolerance (``integrals=("int", "exp")``: all three; a loss asks
only for those it reads, see :attr:`~eventax_dsl.train.Readout.integrals`):

==========  ==========================  ====================================
state       equation                    value at time ``t``
==========  ==========================  ====================================
``q_int``   ``q_int' = V``,  ``0``      ``int_0^t V(s) ds``
``q_w``     ``q_w' = -q_w / tau``, ``1``  ``exp(-t / tau)`` (no explicit ``t``)
``q_exp``   ``q_exp' = V q_w``, ``0``   ``int_0^t V(s) exp(-s / tau) ds``
==========  ==========================  ====================================

``V`` is one scalar observable of the model (``"v"`` by default), or, with
``observable=SPIKE_CONDITION``, the model's spike condition (used by the TTFS
loss's silent-target term, :func:`~eventax_dsl.train.losses.ttfs_loss`). The wrapped
model also observes its quadrature states and ``{V}_dot``, the time derivative of
the observable from the model's own vector field (``grad observe . dynamics``),
which :func:`~eventax_dsl.train.losses.max_over_time` uses for its Hermite
refinement. Spikes, resets and input rules are those of the model (the
quadrature states are continuous: neither rule touches them), and the states
the model solves in closed form (``EXACT_STATES``) stay exact.

Exact quadrature
----------------
When the model is solved entirely in closed form (every state in
``EXACT_STATES``: ``li``, ``lif``) and ``V`` is affine in its states, the
quadrature states are solved in closed form too, so the network keeps the
simulator's closed-form path (no ODE solver at all, see
:mod:`eventax_dsl.sim.exact`). Between events the states obey
``x' = A x + b`` (constant ``A``, ``b``; taken from the model's own
``dynamics`` by forward-mode differentiation) and ``V = c . x + d``. With
``z = x q_w`` the augmented system

==========  ===================================
``x'``      ``A x + b``
``q_int'``  ``c . x + d``
``q_w'``    ``-q_w / tau``
``z'``      ``(A - I / tau) z + b q_w``
``q_exp'``  ``c . z + d q_w``
==========  ===================================

is linear with constant coefficients. When ``A`` and ``A - I / tau`` are invertible
(every exact state leaks, as in ``li`` and ``lif``; checked at the default parameters
when the class is created), integrating ``x' = A x + b`` over ``[0, dt]`` gives
``x1 - x0 = A int(x) + b dt``, and likewise for ``u = x exp(-s / tau)``, so the
integrals are two small linear solves on ``x1``, the model's own closed form:
exact to rounding, also at coincident time constants (the model's flow handles
those). Otherwise (and while a refractory neuron is clamped, which makes ``A``
singular) one matrix exponential of the augmented system
(:func:`jax.scipy.linalg.expm`; Van Loan's construction of integrals of matrix
exponentials) advances it. The solves are much cheaper: on MNIST 784-200-10
LIF→LI with the exp-integral loss (batch 16, one core) a forward+backward step
took 9.5 s with the matrix exponential and 1.4 s with the solves, because under
``vmap`` every Padé branch and all squarings of ``expm`` run for every neuron at
every event. ``z`` needs no state of its own: it equals ``x q_w`` at the start of
every interval. Whether ``V`` is affine
is checked numerically when the class is created (the Jacobian of ``V`` at two
random states with the model's default parameters must agree); if it is not,
the quadrature states are integrated numerically as before.

The simulator sees only the model contract (:mod:`eventax_dsl.contract`), so
nothing in it changes: read the integrals at the window ends with
``net.state_at(x, [t0, T])``.

Example::

    net = FeedForward([QIF, LI], [50, 3], in_size=5, key=key)
    net = attach_quadrature(net, observable="v", tau=50.0)
    obs = net.state_at(x, jnp.array([0.0, 50.0]))
    mean_v = (obs["q_int"][1] - obs["q_int"][0]) / 50.0     # (3,)

Note: ``{V}_dot`` uses the model's ``dynamics``; while a refractory neuron's
``CLAMPED`` states are held by the simulator, it is not the true (zero) rate.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..contract import NeuronModel, StateSpec
from ..runtime import float_dtype

__all__ = ["INTEGRALS", "QUADRATURE_STATES", "SPIKE_CONDITION", "attach_quadrature", "with_quadrature"]

#: Names of the states :func:`with_quadrature` can add, in order.
QUADRATURE_STATES = ("q_int", "q_w", "q_exp")

#: The integrals :func:`with_quadrature` can add: ``"int"`` (``q_int``) and ``"exp"``
#: (``q_w`` and ``q_exp``).
INTEGRALS = ("int", "exp")

#: Pass as ``observable`` to integrate the model's spike condition (``c >= 0``: spike)
#: instead of an observable: bounded where a voltage is not (the ``qif`` voltage
#: ``-pi cot(pi phi)`` is infinite at the spike and after the reset).
SPIKE_CONDITION = "spike_condition"

_CACHE: dict[tuple, type] = {}


def with_quadrature(model: type[NeuronModel], observable: str = "v", tau: float = 50.0,
                    integrals: tuple[str, ...] = INTEGRALS) -> type:
    """A subclass of ``model`` with the quadrature states of ``observable`` (module docs).

    ``tau`` (ms) is the time constant of the exponential weight ``exp(-t / tau)``.
    ``integrals``: which integrals to add, a subset of :data:`INTEGRALS`: ``"int"``
    (state ``q_int``) and ``"exp"`` (states ``q_w``, ``q_exp``); each costs solver
    work at every step, so a loss asks only for what it reads. With ``()`` the
    wrapper adds no state, only the observable ``{observable}_dot``.
    The same arguments return the same class, so ``jit`` caches stay valid.
    Raises ``ValueError`` if ``observable`` is not a scalar observable of ``model``
    or a name would clash.
    """
    if not (isinstance(model, type) and issubclass(model, NeuronModel)):
        raise TypeError(f"with_quadrature() takes a NeuronModel class, got {model!r}")
    if getattr(model, "QUAD_BASE", None) is not None:
        raise ValueError(f"{model.NAME} already has quadrature states")
    if observable == SPIKE_CONDITION and not model.SPIKING:
        raise ValueError(f"with_quadrature: {model.NAME} does not spike, so it has no spike condition")
    if observable != SPIKE_CONDITION and observable not in model.OBSERVABLES:
        raise ValueError(
            f"with_quadrature: {model.NAME} has no observable {observable!r}; "
            f"its observables are: {', '.join(model.OBSERVABLES) or '(none)'}"
        )
    tau = float(tau)
    if not tau > 0:
        raise ValueError(f"with_quadrature: tau must be > 0, got {tau}")
    unknown = sorted(set(integrals) - set(INTEGRALS))
    if unknown:
        raise ValueError(f"with_quadrature: unknown integral(s) {', '.join(map(repr, unknown))}; "
                         f"choose from {', '.join(map(repr, INTEGRALS))}")
    want_int, want_exp = "int" in integrals, "exp" in integrals
    added = tuple(k for k, on in zip(QUADRATURE_STATES, (want_int, want_exp, want_exp)) if on)
    dot = f"{observable}_dot"
    taken = set(model.state_names()) | set(model.OBSERVABLES)
    clash = sorted(taken & (set(QUADRATURE_STATES) | {dot}))
    if clash:
        raise ValueError(f"with_quadrature: {model.NAME} already uses the name(s) {', '.join(clash)}")
    key = (model, observable, tau, added)
    cls = _CACHE.get(key)
    if cls is not None:
        return cls

    own = model.state_names()
    exact = _affine_in_exact_states(model, observable)
    solvable = exact and _invertible_generator(model, tau if want_exp else None)

    def split(s):
        return {k: s[k] for k in own}, {k: s[k] for k in added}

    def init(self, p):
        base = model.init(self, p)
        dtype = float_dtype(p)
        start = {"q_int": 0.0, "q_w": 1.0, "q_exp": 0.0}
        return {**base, **{k: jnp.asarray(start[k], dtype) for k in added}}

    read = _reader(model, observable)

    def observed(self, p, s):
        value = read(self, p, s)
        if jnp.ndim(value) != 0:
            raise ValueError(
                f"with_quadrature: observable {observable!r} of {model.NAME} is not a scalar "
                f"(shape {jnp.shape(value)})"
            )
        return value

    def dynamics(self, p, s):
        base, q = split(s)
        f = model.dynamics(self, p, base)
        value = observed(self, p, base)
        rates = {}
        if want_int:
            rates["q_int"] = value
        if want_exp:
            rates.update(q_w=-q["q_w"] / tau, q_exp=value * q["q_w"])
        return {**f, **rates}

    def spike_condition(self, p, s):
        return model.spike_condition(self, p, split(s)[0])

    def reset(self, p, s):
        base, q = split(s)
        return {**model.reset(self, p, base), **q}

    def receive(self, p, s, w):
        base, q = split(s)
        return {**model.receive(self, p, base, w), **q}

    def observe(self, p, s):
        base, q = split(s)
        out = dict(model.observe(self, p, base))
        f = model.dynamics(self, p, base)
        _, rate = jax.jvp(lambda b: observed(self, p, b), (base,), (f,))
        out.update(q)
        out[dot] = rate
        return out

    def quadrature_flow(self, p, base, q, dt, clamped):
        # one matrix exponential of the augmented linear system (module docs), holding
        # only the blocks of the integrals asked for
        E = model.EXACT_STATES
        n = len(E)
        dtype = jnp.result_type(*(base[k] for k in E))
        A, b, c, d = _affine_parts(model, self, p, base, clamped, observed)
        # augmented order: x (n), 1, [q_int], [q_w, z (n), q_exp]
        one = n
        qi = n + 1
        qw = qi + (1 if want_int else 0)
        z, qe = qw + 1, qw + 1 + n
        m = (qe + 1) if want_exp else qw
        eye = jnp.eye(n, dtype=dtype)
        x0 = jnp.stack([base[k] for k in E])
        M = jnp.zeros((m, m), dtype).at[:n, :n].set(A).at[:n, one].set(b)
        w0 = [x0, jnp.ones((1,), dtype)]
        if want_int:
            M = M.at[qi, :n].set(c).at[qi, one].set(d)
            w0.append(q["q_int"][None])
        if want_exp:
            M = M.at[qw, qw].set(-1.0 / tau)
            M = M.at[z:z + n, z:z + n].set(A - eye / tau).at[z:z + n, qw].set(b)
            M = M.at[qe, z:z + n].set(c).at[qe, qw].set(d)
            w0 += [q["q_w"][None], x0 * q["q_w"], q["q_exp"][None]]
        w1 = jax.scipy.linalg.expm(M * dt) @ jnp.concatenate(w0)
        out = {}
        if want_int:
            out["q_int"] = w1[qi]
        if want_exp:
            out.update(q_w=q["q_w"] * jnp.exp(-dt / tau), q_exp=w1[qe])
        return out

    def solved_quadrature(self, p, base, base1, q, dt):
        # x' = A x + b integrated over [0, dt] gives x1 - x0 = A int(x) + b dt, and
        # u = x exp(-s/tau) gives u1 - u0 = (A - I/tau) int(u) + b tau (1 - exp(-dt/tau)):
        # one small solve per integral, with x1 from the model's own closed form
        E = model.EXACT_STATES
        dtype = jnp.result_type(*(base[k] for k in E))
        A, b, c, d = _affine_parts(model, self, p, base, False, observed)
        x0, x1 = jnp.stack([base[k] for k in E]), jnp.stack([base1[k] for k in E])
        out = {}
        if want_int:
            ix = jnp.linalg.solve(A, x1 - x0 - b * dt)
            out["q_int"] = q["q_int"] + c @ ix + d * dt
        if want_exp:
            decay, rise = jnp.exp(-dt / tau), -jnp.expm1(-dt / tau)
            iu = jnp.linalg.solve(A - jnp.eye(len(E), dtype=dtype) / tau,
                                  decay * x1 - x0 - b * tau * rise)
            out.update(q_w=q["q_w"] * decay,
                       q_exp=q["q_exp"] + q["q_w"] * (c @ iu + d * tau * rise))
        return out

    def flow(self, p, s, dt):
        base, q = split(s)
        base1 = model.flow(self, p, base, dt)
        if not added:
            return base1
        if solvable:
            return {**base1, **solved_quadrature(self, p, base, base1, q, dt)}
        return {**base1, **quadrature_flow(self, p, base, q, dt, False)}

    def flow_clamped(self, p, s, dt):
        base, q = split(s)
        base1 = model.flow_clamped(self, p, base, dt)
        if not added:
            return base1
        return {**base1, **quadrature_flow(self, p, base, q, dt, True)}

    what = " and ".join({"int": "integral", "exp": "exp-weighted integral"}[k]
                        for k in INTEGRALS if k in integrals) or "time derivative"
    namespace = {
        "__module__": model.__module__,
        "__doc__": f"{model.__name__} with the {what} of {observable!r}"
        + (f" (tau = {tau} ms)" if want_exp else "") + "; see eventax_dsl.train.quadrature.",
        "NAME": f"{model.NAME}+quadrature",
        "STATES": tuple(model.STATES) + tuple(StateSpec(k) for k in added),
        "OBSERVABLES": tuple(model.OBSERVABLES) + added + (dot,),
        "QUAD_BASE": model,
        "QUAD_OBSERVABLE": observable,
        "QUAD_TAU": tau,
        "QUAD_STATES": added,
        "init": init,
        "dynamics": dynamics,
        "spike_condition": spike_condition,
        "reset": reset,
        "receive": receive,
        "observe": observe,
    }
    if exact:
        namespace.update(EXACT_STATES=tuple(model.EXACT_STATES) + added,
                         flow=flow, flow_clamped=flow_clamped)
    cls = type(model)(f"{model.__name__}Quadrature", (model,), namespace)
    _CACHE[key] = cls
    return cls


def _affine_parts(model, pop, p, base, clamped, observed):
    """``A, b, c, d`` of ``x' = A x + b`` and ``V = c . x + d`` over the exact states
    (``CLAMPED`` rows zero when ``clamped``), from the model's own ``dynamics`` and
    observable by forward-mode differentiation at ``x = 0``."""
    E = model.EXACT_STATES
    dtype = jnp.result_type(*(base[k] for k in E))

    def at(xv):
        return {**base, **{k: xv[j] for j, k in enumerate(E)}}

    def field(xv):
        f = model.dynamics(pop, p, at(xv))
        return jnp.stack([jnp.zeros((), dtype) if (clamped and k in model.CLAMPED) else f[k]
                          for k in E])

    zero = jnp.zeros((len(E),), dtype)
    value = lambda xv: observed(pop, p, at(xv))  # noqa: E731
    return jax.jacfwd(field)(zero), field(zero), jax.grad(value)(zero), value(zero)


def _invertible_generator(model: type[NeuronModel], tau: float | None) -> bool:
    """Are ``A`` and ``A - I / tau`` (module docs; ``A`` alone if ``tau`` is ``None``) well
    conditioned at the model's default parameters? Then the quadrature needs small
    solves instead of a matrix exponential. True for every model whose exact states all
    leak (``li``, ``lif``)."""
    try:
        pop = model.create(1)
        p = {k: v[0] for k, v in pop.params.items()}
        dtype = jnp.result_type(float)
        E = model.EXACT_STATES
        base = {k: jnp.zeros((), dtype) for k in E}
        A = np.asarray(_affine_parts(model, pop, p, base, False, lambda *_: jnp.zeros((), dtype))[0], float)
        bound = 1e-3 / float(jnp.finfo(dtype).eps)
        mats = (A,) if tau is None else (A, A - np.eye(len(E)) / tau)
        conds = [np.linalg.cond(m) for m in mats]
        return all(np.isfinite(c) and c < bound for c in conds)
    except Exception:  # noqa: BLE001 - anything unexpected: keep the matrix exponential
        return False


def _reader(model: type[NeuronModel], observable: str):
    """``(pop, p, s) -> value`` of ``observable`` (or of the spike condition) for one neuron."""
    if observable == SPIKE_CONDITION:
        return lambda pop, p, s: model.spike_condition(pop, p, s)
    return lambda pop, p, s: model.observe(pop, p, s)[observable]


def _affine_in_exact_states(model: type[NeuronModel], observable: str) -> bool:
    """Can the quadrature states of ``observable`` be solved in closed form (module docs)?

    Every state of ``model`` is exact (so all of them obey linear constant-coefficient
    ODEs between events), all are scalars, and the observable is affine in them:
    checked with the default parameters, as equal Jacobians and a zero affine
    remainder at two random states.
    """
    names = model.state_names()
    if not names or set(model.EXACT_STATES) != set(names):
        return False
    if any(spec.shape != () for spec in model.STATES):
        return False
    try:
        pop = model.create(1)
    except Exception:  # noqa: BLE001 - a model without usable defaults: stay numeric
        return False
    p = {k: v[0] for k, v in pop.params.items()}
    E = model.EXACT_STATES
    dtype = jnp.result_type(float)

    read = _reader(model, observable)

    def value(xv):
        return read(pop, p, {k: xv[j] for j, k in enumerate(E)})

    try:
        rng = np.random.default_rng(0)
        points = [jnp.asarray(rng.normal(0.0, 3.0, len(E)), dtype) for _ in range(2)]
        zero = jnp.zeros((len(E),), dtype)
        grads = [jax.grad(value)(x) for x in points]
        tol = 1e3 * float(jnp.finfo(dtype).eps)
        for x, g in zip(points, grads):
            affine = value(zero) + jnp.dot(g, x)
            if not bool(jnp.allclose(g, grads[0], rtol=tol, atol=tol)):
                return False
            if not bool(jnp.allclose(value(x), affine, rtol=tol, atol=tol * (1 + float(jnp.max(jnp.abs(x)))))):
                return False
    except Exception:  # noqa: BLE001 - not differentiable as written: stay numeric
        return False
    return True


def attach_quadrature(net, observable: str = "v", tau: float = 50.0,
                      integrals: tuple[str, ...] = INTEGRALS):
    """``net`` with its output population wrapped by :func:`with_quadrature` (same parameters)."""
    pop = net.populations[net.output]
    wrapped = with_quadrature(type(pop), observable, tau, tuple(integrals))(params=pop.params, size=pop.size)
    return eqx.tree_at(lambda n: n.populations[n.output], net, wrapped)
