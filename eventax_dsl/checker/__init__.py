"""The checker: syntax tree -> validated, simplified SymPy IR."""

from .check import check, check_with_warnings
from .ir import ChannelIR, ModelIR, ParamIR, StateIR

__all__ = ["check", "check_with_warnings", "ModelIR", "StateIR", "ParamIR", "ChannelIR"]
