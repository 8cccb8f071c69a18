"""The small runtime that generated model modules import.

Only numerically careful primitives live here; everything else in a generated
module is plain ``jax.numpy``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import jax.scipy.linalg

__all__ = ["exprel", "exp_divdiff", "sigmoid", "fill", "fill_like", "float_dtype"]

_EXPREL_CUT = 1e-3
#: below this |x| the derivative of exprel is a power series: the closed form
#: ``(e^x - exprel(x)) / x`` cancels, losing about ``eps / |x|`` of its relative precision
#: (4e-4 at ``|x| = 1e-3`` in float32)
_EXPREL_DERIV_CUT = 0.5
#: d/dx exprel = sum_k (k + 1) x^k / (k + 2)!: terms k = 0..15, enough for float64 at |x| <= 0.5
_EXPREL_DERIV_COEFFS = tuple((k + 1) / math.factorial(k + 2) for k in range(16))


def _horner(coeffs, x):
    out = jnp.full_like(x, coeffs[-1])
    for c in coeffs[-2::-1]:
        out = out * x + c
    return out


@jax.custom_jvp
def exprel(x):
    """``(exp(x) - 1) / x``, equal to 1 at ``x = 0``; finite value and gradient everywhere.

    Used for removable singularities such as the Hodgkin-Huxley rate
    ``x / (1 - exp(-x)) = 1 / exprel(-x)``. Near 0 Taylor polynomials are used (for the
    value below ``|x| = 1e-3``, for the derivative below ``|x| = 0.5``, where its closed
    form would cancel), so value and derivative are accurate to a few units in the last
    place; the untaken branch never sees a 0/0, so gradients contain no NaN.
    """
    x = jnp.asarray(x)
    small = jnp.abs(x) < _EXPREL_CUT
    safe = jnp.where(small, jnp.ones_like(x), x)
    taylor = 1 + x / 2 + x * x / 6 + x * x * x / 24 + x * x * x * x / 120
    return jnp.where(small, taylor, jnp.expm1(safe) / safe)


@exprel.defjvp
def _exprel_jvp(primals, tangents):
    (x,), (dx,) = primals, tangents
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.inexact):
        x = x.astype(jnp.result_type(float))
    y = exprel(x)
    small = jnp.abs(x) < _EXPREL_DERIV_CUT
    safe = jnp.where(small, jnp.ones_like(x), x)
    # d/dx exprel = (x e^x - e^x + 1) / x^2 = (e^x - exprel(x)) / x
    deriv = jnp.where(small, _horner(_EXPREL_DERIV_COEFFS, x),
                      (jnp.exp(safe) - exprel(safe)) / safe)
    return y, deriv * dx


def sigmoid(x):
    """The logistic function, stable for large ``|x|``."""
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.inexact):  # sigmoid(0): an integer constant
        x = x.astype(jnp.result_type(float))
    return jax.nn.sigmoid(x)


def fill(value, shape, dtype=None):
    """``value`` as an array of ``shape`` (scalars are broadcast)."""
    return jnp.broadcast_to(jnp.asarray(value, dtype=dtype), shape)


def taken(cond, *earlier):
    """Where branch ``i`` of an ``if`` chain is taken: ``cond`` and none of the ``earlier``
    conditions (each negated as a value, as ``jnp.where`` reads it)."""
    out = jnp.asarray(cond)
    for c in earlier:
        out = out & jnp.logical_not(c)
    return out


def guard(taken, x):
    """``x`` where ``taken``, elsewhere ``x`` without a gradient: read inside an ``if`` branch, it
    keeps the branch not taken from turning the gradient NaN (a ``sqrt`` or ``log`` outside its
    domain, an ``exp`` that overflows)."""
    return jnp.where(taken, x, jax.lax.stop_gradient(x))


def vsum(value, n):
    """The sum over the ``n`` elements of a vector; a scalar ``value`` counts ``n`` times."""
    return jnp.sum(jnp.broadcast_to(value, (n,)))


def fill_like(value, ref):
    """``value`` with the shape and dtype of ``ref``."""
    return jnp.broadcast_to(jnp.asarray(value, dtype=jnp.result_type(ref)), jnp.shape(ref))


def float_dtype(params):
    """The float dtype of a neuron's parameters (the default float if it has none)."""
    for value in params.values():
        return jnp.result_type(value)
    return jnp.result_type(float)


def exp_divdiff(t, *rates):
    """Divided difference of ``r -> exp(r t)`` at ``rates``: the entries of a matrix exponential.

    - one rate ``a``: ``exp(a t)``;
    - two rates: ``(exp(a t) - exp(b t)) / (a - b)``, which is 0/0 at ``a = b``
      (e.g. ``tau_mem = tau_syn``). Written as ``t exp(hi t) exprel(-(hi - lo) t)``
      with ``hi``/``lo`` the larger/smaller rate, it is finite in value and
      gradient on both sides of the coincidence and at it (``exprel`` has a
      Taylor branch near 0), and never overflows unless ``exp(hi t)`` does. At
      an exact tie the branch ``a >= b`` is taken, whose derivative is the
      correct one-sided (= two-sided) derivative;
    - three or more: the top-right entry of ``expm(t (diag(rates) + J))``, ``J``
      the ones on the superdiagonal (Opitz' formula), which stays accurate when
      any rates coincide.

    All arguments broadcast (vector states are solved elementwise).
    """
    t = jnp.asarray(t)
    if len(rates) == 0:
        raise TypeError("exp_divdiff needs at least one rate")
    if len(rates) == 1:
        return jnp.exp(rates[0] * t)
    if len(rates) == 2:
        a, b = rates
        first = a >= b
        hi = jnp.where(first, a, b)
        gap = jnp.where(first, a - b, b - a)
        return t * jnp.exp(hi * t) * exprel(-gap * t)
    k = len(rates)
    rates = jnp.broadcast_arrays(t, *rates)
    t, rates = rates[0], rates[1:]
    shape = t.shape
    m = jnp.zeros(shape + (k, k), t.dtype)
    for i, r in enumerate(rates):
        m = m.at[..., i, i].set(r * t)
        if i + 1 < k:
            m = m.at[..., i, i + 1].set(t)
    return jax.scipy.linalg.expm(m)[..., 0, k - 1]
