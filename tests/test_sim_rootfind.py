"""The spike-time root finder, :class:`eventax_dsl.sim.rootfind.SafeNewton` (float64)."""

import jax
import jax.numpy as jnp
import numpy as np
import optimistix as optx
import pytest

from eventax_dsl.sim.rootfind import SafeNewton

jax.config.update("jax_enable_x64", True)

TOL = 1e-12


def _solve(fn, start, lower, upper, tol=TOL):
    sol = optx.root_find(
        lambda t, _: fn(t), SafeNewton(rtol=tol, atol=tol), jnp.asarray(start, jnp.float64),
        options=dict(lower=jnp.asarray(lower, jnp.float64), upper=jnp.asarray(upper, jnp.float64)),
        throw=False)
    return float(sol.value), int(sol.stats["num_steps"])


@pytest.mark.parametrize("start", [0.1, 1.0, 3.0])
def test_upward_crossing_converges_quadratically(start):
    root, steps = _solve(lambda t: jnp.exp(t) - 2.0, start, 0.0, 3.0)
    assert root == pytest.approx(np.log(2.0), abs=10 * TOL)
    assert steps <= 8  # Newton; bisection alone would need ~42 halvings of [0, 3]


def test_downward_crossing():
    root, steps = _solve(lambda t: jnp.cos(t), 1.0, 0.0, 3.0)
    assert root == pytest.approx(np.pi / 2, abs=10 * TOL)
    assert steps <= 8


def test_newton_landing_on_the_bracket_end_is_accepted():
    """The root is the bracket's upper end (to rounding): every Newton step lands
    exactly on it. Rejecting such a step as "outside" bisected instead, and Newton
    landed on the end again, so the finder crawled to the tolerance by halving
    (~40 iterations; seen for spikes inside single solver steps)."""
    r = 34.70794085244862
    root, steps = _solve(lambda t: 0.1 * (t - r), 34.7, 34.39, r)
    assert root == pytest.approx(r, abs=10 * TOL)
    assert steps <= 3


def test_kink_falls_back_to_bisection_and_still_converges():
    # the earliest-crossing condition is a max over neurons: not differentiable
    # where two of them are equal
    fn = lambda t: jnp.maximum(0.3 * (t - 1.0), 5.0 * (t - 1.2))
    root, _ = _solve(fn, 2.0, 0.0, 2.0)
    assert root == pytest.approx(1.0, abs=10 * TOL)


def test_empty_bracket_stops_at_once():
    """A sample without a crossing gets the bracket [t, t]; under ``jax.vmap`` the
    finder's loop runs as long as its slowest sample, so this must not iterate."""
    root, steps = _solve(lambda t: t - 100.0, 2.0, 2.0, 2.0)
    assert root == 2.0
    assert steps <= 1
