"""A safeguarded Newton root finder for spike times (Newton inside a bisection bracket).

Diffrax locates an event by root-finding on ``c(y(t))`` over the last solver
step ``[t_prev, t_next]``, where the sign of ``c`` is known to differ at the two
ends. Optimistix's ``Newton`` and ``Bisection`` both stop only once
``|c| < atol`` -- a tolerance in the *units of the condition* (millivolts,
phase, ...), which may be unreachable in float32 when ``|v|`` is large, and then
the solve "fails". Spike times need a tolerance in *time*.

:class:`SafeNewton` is the classic ``rtsafe`` scheme:

- keep a bracket ``[lower, upper]`` in which ``c`` changes sign;
- take a Newton step ``t - c/c'``; if it leaves the closed bracket (or ``c'`` has
  the wrong sign), bisect instead;
- stop when the last step is below ``atol + rtol * |t|`` (or ``c == 0``).

It always converges (bisection at worst halves the bracket), quadratically
near a simple root. Implemented as an :class:`optimistix.AbstractRootFinder`, so
Diffrax uses it as is, and its gradient is the implicit-function one that
Optimistix attaches to every root find.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import optimistix as optx


class _State(eqx.Module):
    lower: jax.Array
    upper: jax.Array
    flip: jax.Array  # True when c(lower) > 0 (a downward crossing)
    diff: jax.Array
    hit_zero: jax.Array


class SafeNewton(optx.AbstractRootFinder):
    """Newton's method safeguarded by bisection; tolerance on the root (time) only.

    Needs ``options`` ``lower`` and ``upper`` bracketing the root (Diffrax passes
    them for event root finding).
    """

    rtol: float
    atol: float
    norm: ClassVar[Callable] = jnp.abs

    def init(self, fn, y, args, options: dict[str, Any], f_struct, aux_struct, tags):
        lower = jnp.asarray(options["lower"], f_struct.dtype)
        upper = jnp.asarray(options["upper"], f_struct.dtype)
        lower_val, _ = fn(lower, args)
        return _State(
            lower=lower,
            upper=upper,
            flip=lower_val > 0,
            diff=jnp.asarray(jnp.inf, f_struct.dtype),
            hit_zero=jnp.asarray(False),
        )

    def step(self, fn, y, args, options, state: _State, tags):
        del options
        (value, aux), (slope, _) = jax.jvp(
            lambda t: fn(t, args), (y,), (jnp.ones_like(y),)
        )
        # Orient so that the function increases through the root.
        value = jnp.where(state.flip, -value, value)
        slope = jnp.where(state.flip, -slope, slope)
        below = value < 0
        lower = jnp.where(below, y, state.lower)
        upper = jnp.where(below, state.upper, y)
        ok_slope = slope > 0
        newton = y - value / jnp.where(ok_slope, slope, jnp.ones_like(slope))
        # Inclusive: near convergence the Newton point rounds onto a bracket end
        # (the root is within one ulp of it); rejecting it would bisect away from
        # the root, and Newton would land on the same end again, every iteration.
        inside = ok_slope & (newton >= lower) & (newton <= upper)
        new_y = jnp.where(inside, newton, lower + 0.5 * (upper - lower))
        hit_zero = value == 0
        new_y = jnp.where(hit_zero, y, new_y)
        new_state = _State(
            lower=lower,
            upper=upper,
            flip=state.flip,
            diff=jnp.abs(new_y - y),
            hit_zero=hit_zero,
        )
        return new_y, new_state, aux

    def terminate(self, fn, y, args, options, state: _State, tags):
        del fn, args, options, tags
        scale = self.atol + self.rtol * jnp.abs(y)
        small = (state.diff < scale) | (state.upper - state.lower < scale)
        return small | state.hit_zero, optx.RESULTS.successful

    def postprocess(self, fn, y, aux, args, options, state, tags, result):
        return y, aux, {}
