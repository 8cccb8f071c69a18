"""eventax-dsl: a symbolic neuron-model compiler and differentiable event-driven simulator.

Write a neuron as equations in a ``.neuron`` file, compile it to a JAX module,
and simulate networks of it with exact gradients::

    import eventax_dsl
    LIF = eventax_dsl.load("models/lif.neuron")
    pop = LIF.create(50, tau_mem=15.0)
"""

from .compiler import Compiled, compile_source, load
from .contract import ChannelSpec, NeuronModel, ParamSpec, StateSpec
from .language.diagnostics import CompileError, Diagnostic, Span
from .version import __version__

__all__ = [
    "load", "compile_source", "Compiled", "NeuronModel", "StateSpec", "ParamSpec", "ChannelSpec",
    "CompileError", "Diagnostic", "Span", "__version__",
]
