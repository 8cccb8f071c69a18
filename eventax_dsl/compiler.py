"""The whole pipeline as pure functions: source text -> model class.

    parse (language) -> check (SymPy IR) -> generate (Python source) -> exec

:func:`load` compiles in memory and caches the class by the content hash of
the source, so loading the same file twice costs nothing and returns the very
same class.
"""

from __future__ import annotations

import hashlib
import types
from dataclasses import dataclass
from pathlib import Path

from .checker import ModelIR, check_with_warnings
from .codegen import generate
from .language.diagnostics import CompileError, Diagnostic
from .language.parser import decode_source, parse


@dataclass(frozen=True)
class Compiled:
    """The result of compiling one file: its IR, Python source and warnings.

    ``text`` is the ``.neuron`` text as compiled (decoded, without a byte-order mark):
    the text that the warnings' spans point into.
    """

    ir: ModelIR
    source: str
    warnings: tuple[Diagnostic, ...]
    text: str = ""


def compile_source(text: bytes | str, filename: str = "<input>") -> Compiled:
    """Compile ``.neuron`` text. Raises :class:`CompileError` on any problem in it."""
    text = decode_source(text, filename)
    model = parse(text, filename)
    try:
        ir, warnings = check_with_warnings(model, text, filename)
        return Compiled(ir, generate(ir), tuple(warnings), text)
    except RecursionError:
        # The parser and the checker bound the nesting of every expression and alias
        # (E005); this is the backstop for a combination they did not foresee.
        raise CompileError([Diagnostic(
            "E005", "the model's expressions are nested too deeply to compile (Python's "
                    "recursion limit was reached)", None,
            "split deeply nested expressions or long alias chains into shorter ones")],
            text, filename) from None


def read_source(path) -> bytes:
    """The bytes of a model file, or a CompileError saying why it cannot be read."""
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise CompileError([Diagnostic("E000", f"cannot read the file: {exc.strerror or exc}", None)],
                           None, str(path)) from None


_CACHE: dict[str, type] = {}


def class_from_source(python_source: str, module_name: str) -> type:
    """Execute generated module source and return the model class it defines."""
    module = types.ModuleType(module_name)
    module.__file__ = f"<eventax:{module_name}>"
    exec(compile(python_source, module.__file__, "exec"), module.__dict__)
    from .contract import NeuronModel

    classes = [v for v in module.__dict__.values()
               if isinstance(v, type) and issubclass(v, NeuronModel) and v is not NeuronModel]
    return classes[0]


def load(path) -> type:
    """The model class for a ``.neuron`` file, compiled in memory and cached by content.

    >>> LIF = load("models/lif.neuron")          # doctest: +SKIP
    >>> pop = LIF.create(10, tau_mem=15.0)       # doctest: +SKIP
    """
    data = read_source(path)
    key = hashlib.sha256(data).hexdigest() + "|" + str(path)
    cls = _CACHE.get(key)
    if cls is None:
        compiled = compile_source(data, str(path))
        cls = class_from_source(compiled.source, f"eventax_model_{compiled.ir.source_sha256[:12]}")
        _CACHE[key] = cls
    return cls
