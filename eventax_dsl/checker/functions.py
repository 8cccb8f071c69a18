"""The built-in functions of the language and their SymPy counterparts.

Each entry gives the accepted arity, how to build the SymPy expression and the
unit rule. Three functions have no faithful SymPy equivalent and are kept as
opaque :class:`sympy.Function` subclasses, printed straight to the runtime:

* ``sigmoid(x)``  -> ``jax.nn.sigmoid`` (stable for large ``|x|``),
* ``vsum(x, n)``  -> the sum over the ``n`` elements of a vector,
* ``exprel(x)``   -> ``(exp(x) - 1) / x``, finite at 0 in value and gradient
  (introduced by the checker for removable singularities such as the
  Hodgkin-Huxley rate functions).
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import sympy as sp


class sigmoid(sp.Function):  # noqa: N801 - printed name
    """Logistic function 1 / (1 + exp(-x))."""

    nargs = 1

    def fdiff(self, argindex=1):
        s = sigmoid(self.args[0])
        return s * (1 - s)

    def _eval_rewrite_as_exp(self, x, **kwargs):
        return 1 / (1 + sp.exp(-x))


class vsum(sp.Function):  # noqa: N801
    """``vsum(x, n)``: the sum over the ``n`` elements of a vector quantity (linear).

    The length travels with the sum because the argument may simplify to a
    scalar (``sum(g / g)`` is ``vsum(1, n) = n``): a scalar stands for ``n``
    equal elements.
    """

    nargs = 2

    @classmethod
    def eval(cls, x, n):
        if x.is_number:
            return n * x
        return None

    def fdiff(self, argindex=1):
        return sp.Integer(1) if argindex == 1 else sp.Integer(0)

    def _sympystr(self, printer):
        return f"sum({printer._print(self.args[0])})"


class exprel(sp.Function):  # noqa: N801
    """(exp(x) - 1) / x with exprel(0) = 1."""

    nargs = 1

    def fdiff(self, argindex=1):
        x = self.args[0]
        return (x * sp.exp(x) - sp.exp(x) + 1) / x**2

    def _eval_rewrite_as_exp(self, x, **kwargs):
        return (sp.exp(x) - 1) / x


class Builtin(NamedTuple):
    min_args: int
    max_args: int | None  # None: any number >= min_args
    build: Callable[..., sp.Expr]
    units: str  # 'dimensionless' (args and result), 'same' (args agree, result too),
    #             'sqrt', 'abs', 'vector-sum'


def _clip(x, lo, hi):
    return sp.Min(sp.Max(x, lo), hi)


BUILTINS: dict[str, Builtin] = {
    "exp": Builtin(1, 1, sp.exp, "dimensionless"),
    "log": Builtin(1, 1, sp.log, "dimensionless"),
    "sqrt": Builtin(1, 1, sp.sqrt, "sqrt"),
    "tanh": Builtin(1, 1, sp.tanh, "dimensionless"),
    "sinh": Builtin(1, 1, sp.sinh, "dimensionless"),
    "cosh": Builtin(1, 1, sp.cosh, "dimensionless"),
    "sigmoid": Builtin(1, 1, sigmoid, "dimensionless"),
    "sin": Builtin(1, 1, sp.sin, "dimensionless"),
    "cos": Builtin(1, 1, sp.cos, "dimensionless"),
    "tan": Builtin(1, 1, sp.tan, "dimensionless"),
    "cot": Builtin(1, 1, sp.cot, "dimensionless"),
    "arctan": Builtin(1, 1, sp.atan, "dimensionless"),
    "abs": Builtin(1, 1, sp.Abs, "same"),
    "min": Builtin(2, None, sp.Min, "same"),
    "max": Builtin(2, None, sp.Max, "same"),
    "clip": Builtin(3, 3, _clip, "same"),
    "sum": Builtin(1, 1, vsum, "vector-sum"),
}

CONSTANTS = {"pi": sp.pi, "e": sp.E}
