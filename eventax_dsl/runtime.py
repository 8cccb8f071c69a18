"""The small runtime that generated model modules import.

Only numerically careful primitives live here; everything else in a generated
module is plain ``jax.numpy``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["exprel", "sigmoid", "fill", "fill_like", "float_dtype"]

_EXPREL_CUT = 1e-3


@jax.custom_jvp
def exprel(x):
    """``(exp(x) - 1) / x``, equal to 1 at ``x = 0``; finite value and gradient everywhere.

    Used for removable singularities such as the Hodgkin-Huxley rate
    ``x / (1 - exp(-x)) = 1 / exprel(-x)``. Near 0 a Taylor polynomial is used;
    the untaken branch never sees a 0/0, so gradients contain no NaN.
    """
    x = jnp.asarray(x)
    small = jnp.abs(x) < _EXPREL_CUT
    safe = jnp.where(small, jnp.ones_like(x), x)
    taylor = 1 + x / 2 + x * x / 6 + x * x * x / 24
    return jnp.where(small, taylor, jnp.expm1(safe) / safe)


@exprel.defjvp
def _exprel_jvp(primals, tangents):
    (x,), (dx,) = primals, tangents
    x = jnp.asarray(x)
    y = exprel(x)
    small = jnp.abs(x) < _EXPREL_CUT
    safe = jnp.where(small, jnp.ones_like(x), x)
    # d/dx exprel = (x e^x - e^x + 1) / x^2 = (e^x - exprel(x)) / x
    deriv = jnp.where(small, 0.5 + x / 3 + x * x / 8, (jnp.exp(safe) - exprel(safe)) / safe)
    return y, deriv * dx


def sigmoid(x):
    """The logistic function, stable for large ``|x|``."""
    return jax.nn.sigmoid(x)


def fill(value, shape, dtype=None):
    """``value`` as an array of ``shape`` (scalars are broadcast)."""
    return jnp.broadcast_to(jnp.asarray(value, dtype=dtype), shape)


def fill_like(value, ref):
    """``value`` with the shape and dtype of ``ref``."""
    return jnp.broadcast_to(jnp.asarray(value, dtype=jnp.result_type(ref)), jnp.shape(ref))


def float_dtype(params):
    """The float dtype of a neuron's parameters (the default float if it has none)."""
    for value in params.values():
        return jnp.result_type(value)
    return jnp.result_type(float)
