"""Fuzzing the compiler: for ANY input it succeeds or raises CompileError.

Model texts (the library in ``models/``, the invalid corpus and a few samples
below) are mutated -- lines deleted, duplicated and swapped, characters,
tokens and keywords inserted, truncated, random bytes spliced in -- and
compiled. The only acceptable outcomes are a compiled model whose generated
Python parses, or a :class:`CompileError` whose every diagnostic has a known
code, a sane span and renders. A Python traceback of any other kind is a bug.

Deterministic (``derandomize=True``) and bounded: well under a minute.
"""

from __future__ import annotations

import ast
import json
import re
import signal
import contextlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from eventax_dsl import CompileError, compile_source
from eventax_dsl.cli import compile_main
from eventax_dsl.language.diagnostics import CODES

ROOT = Path(__file__).resolve().parent.parent

SAMPLES = [
    b'''language 1
neuron LIF
"""Leaky integrate-and-fire with an exponential current synapse."""

constants:
    N = 3

parameters:
    tau_mem = 20 ms   learnable
    tau_syn = 5 ms
    v_th    = 1.0
    g[N]    = [1, 2, 3] nS
    bias    = 0.0   learnable      # trained per neuron

state:
    v = 0.0
    i = 0.0
    x[N] = 0

equations:
    drive = i + bias
    v' = (-v + drive) / tau_mem
    i' = -i / tau_syn
    x' = -x / tau_syn + \\
         sum(g) / (1 nS * tau_mem)
    y = if v > 1 then exp(-(v
        + 1)) else 2

spike when v >= v_th and not refractory
refractory 2 ms clamp v
reset:
    v -= v_th
    x = x * 0.5
on input(w, u[N]):
    i += w
    x += u
observe:
    v
    total = sum(x) + y
''',
    b'''neuron HHRate
parameters:
    a = 0.1
    c = 1.0 nF
state:
    v = -65 mV
    m = 0.05
equations:
    alpha = a * (v + 40 mV) / (1 mV) / (1 - exp(-(v + 40 mV) / 10 mV)) / 1 ms
    m' = alpha * (1 - m) - m / 2 ms
    v' = -(v + 65 mV) / 10 ms + clip(m, 0, 1) * 1 mV/ms
spike when v >= -20 mV
reset:
    v = -65 mV
on input(w):
    v += w * 1 mV
''',
    b'''neuron NoSpike
state:
    v = 0
equations:
    v' = -v / 10 ms + max(sin(v), cos(v), tanh(v)) / 1 ms
''',
]

MODELS = [p.read_bytes() for p in sorted((ROOT / "models").glob("*.neuron"))]
INVALID = [p.read_bytes() for p in sorted((ROOT / "tests" / "invalid").glob("*.neuron"))]
VALID = SAMPLES + MODELS

TOKENS = [
    # keywords and section headers
    "language 1", "neuron", "constants:", "parameters:", "state:", "equations:", "spike when",
    "refractory", "clamp", "reset:", "on input(w):", "observe:", "learnable", "if", "then",
    "else", "and", "or", "not", "not refractory", "when", "input", "keep", "keep input", "clampv",
    "msclamp", "vkeep", "factor",
    # operators and punctuation
    "(", ")", "[", "]", ",", ":", "'", "=", "+=", "-=", "+", "-", "*", "/", "^", "**", ">=",
    "<=", "==", "!=", "<", ">", "\\\n", "\n", "\r\n", "\t", "    ", '"""', "#", ";", "{", "$",
    # numbers and units
    "0", "1", "-1", ".5", "1e308", "1e999", "1e-400", "99999999999999999999999", "10^10^10",
    "2^1000", "ms", "mV", "nS/mV", "ms^-2", "Ohm", "\u00b5F", "mss", "kHz",
    # names, dunders, functions, constants
    "v", "i", "w", "tau_mem", "__import__", "__class__", "_x", "lambda", "print", "self", "jnp",
    "exp(", "log(", "sqrt(", "sum(", "exprel(", "clip(", "max(", "min(", "sigmoid(", "pi", "e",
    "x[3]", "x[0]", "[1, 2, 3]",
    # odd characters
    "\x00", "\x0c", "\u2028", "\u00e9", "\U0001f600", "\ufeff",
]


EXPR_TOKENS = ["(", ")", "+", "-", "*", "/", "^", ">=", "<", "==", "and", "or", "not", "if", "then",
               "else", "refractory", "0", "1", ".5", "1e308", "1e-400", "2^1000", "10^10^10", "ms",
               "mV", "nS/mV", "ms^-2", "mss", "v", "w", "a", "b", "K", "q", "o", "pi", "e", "exp(",
               "log(", "sqrt(", "sum(", "clip(", "max(", "sigmoid(", ",", "[1, 2]", "-1"]


class _Timeout(Exception):
    pass


@contextlib.contextmanager
def time_limit(seconds: int):
    """Fail instead of hanging if one compilation takes far too long."""
    if not hasattr(signal, "SIGALRM"):  # pragma: no cover - Windows
        yield
        return

    def on_alarm(signum, frame):
        raise _Timeout(f"compilation took more than {seconds} s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def check_total(data: bytes | str, filename: str = "fuzz.neuron"):
    """Compile; anything but success or a well-formed CompileError fails the test."""
    with time_limit(20):
        try:
            compiled = compile_source(data, filename)
        except CompileError as err:
            check_error(err, data, filename)
            return "error"
    ast.parse(compiled.source)
    compile(compiled.source, filename, "exec")
    for w in compiled.warnings:
        assert w.code in CODES and w.code.startswith("W")
        w.render(data if isinstance(data, str) else data.decode("utf-8"), filename)
    return "ok"


def check_error(err: CompileError, data, filename):
    assert err.diagnostics, "a CompileError must carry at least one diagnostic"
    text = err.source if err.source is not None else ""
    nlines = text.count("\n") + 1
    for d in err.diagnostics + list(err.warnings):
        assert d.code in CODES, d.code
        assert isinstance(d.message, str) and d.message
        if d.span is not None:
            s = d.span
            assert 1 <= s.line <= nlines + 1 and s.column >= 1, (d, nlines)
            assert (s.end_line, s.end_column) >= (s.line, s.column), d
        rendered = d.render(err.source, filename)
        assert rendered.startswith(f"{filename}:")
        assert f"[{d.code}]" in rendered.split("\n")[0]
        json.dumps(d.to_json(filename))
    assert str(err)  # the exception message is the rendering


# ------------------------------------------------------------------ mutations


def _lines(b: bytes) -> list[bytes]:
    return b.split(b"\n")


def seeds():
    """A valid model most of the time, an invalid one otherwise."""
    return st.one_of(st.sampled_from(VALID), st.sampled_from(VALID), st.sampled_from(INVALID))


_WORD = re.compile(rb"[A-Za-z_][A-Za-z0-9_]*")
_NUMBER = re.compile(rb"(?<![A-Za-z_0-9.])[0-9]+(\.[0-9]*)?([eE][-+]?[0-9]+)?")
_OPERATOR = re.compile(rb"\+=|-=|>=|<=|==|!=|\*\*|[-+*/^<>=]")
_NUMBERS = [b"0", b"1", b"-1", b"0.0", b"1e308", b"1e-308", b"1e999", b"2.5", b"4097", b"123456789012345678901234567890"]
_OPERATORS = [b"+", b"-", b"*", b"/", b"^", b">=", b"<", b"==", b"=", b"+=", b"-=", b" and ", b" or "]


@st.composite
def token_mutated(draw):
    """Small, mostly syntax-preserving edits: they reach the checker and the code generator."""
    data = draw(st.sampled_from(VALID))
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["word", "number", "operator", "unit_power"]))
        pattern = {"word": _WORD, "number": _NUMBER, "operator": _OPERATOR, "unit_power": _WORD}[op]
        matches = list(pattern.finditer(data))
        if not matches:
            continue
        m = draw(st.sampled_from(matches))
        if op == "word":
            words = sorted({w.group() for w in _WORD.finditer(data)})
            new = draw(st.sampled_from(words + [b"_x", b"__class__", b"lambda", b"print", b"jnp", b"self",
                                                b"p", b"s", b"w", b"t_0", b"dtype", b"exp", b"pi", b"e",
                                                b"sum", b"refractory", b"if", b"not", b"state"]))
        elif op == "number":
            new = draw(st.sampled_from(_NUMBERS))
        elif op == "operator":
            new = draw(st.sampled_from(_OPERATORS))
        else:
            new = m.group() + draw(st.sampled_from([b"^2", b"^-1", b"^0", b"^13", b"/ms", b"*mV"]))
        data = data[:m.start()] + new + data[m.end():]
    return data


@st.composite
def mutated(draw):
    data = draw(seeds())
    for _ in range(draw(st.integers(1, 4))):
        lines = _lines(data)
        op = draw(st.sampled_from(["delete", "duplicate", "swap", "insert_token", "insert_chars",
                                   "truncate", "bytes", "nest", "replace_token", "join"]))
        n = len(lines)
        i = draw(st.integers(0, max(0, n - 1)))
        if op == "delete" and n > 1:
            del lines[i]
        elif op == "duplicate":
            lines.insert(i, lines[i])
        elif op == "swap" and n > 1:
            j = draw(st.integers(0, n - 1))
            lines[i], lines[j] = lines[j], lines[i]
        elif op == "join" and n > 1:
            lines[i:i + 2] = [b" ".join(lines[i:i + 2])]
        elif op in ("insert_token", "insert_chars", "nest", "replace_token"):
            line = lines[i]
            pos = draw(st.integers(0, len(line)))
            if op == "insert_token":
                piece = " ".join(draw(st.lists(st.sampled_from(TOKENS), min_size=1, max_size=3)))
            elif op == "insert_chars":
                piece = draw(st.text(min_size=1, max_size=6))
            elif op == "nest":
                depth = draw(st.sampled_from([3, 40, 63, 64, 65, 200]))
                piece = "(" * depth + draw(st.sampled_from(["v", "1", "v * 2", "exp(v)"])) + ")" * depth
            else:
                end = draw(st.integers(pos, len(line)))
                line = line[:pos] + line[end:]
                piece = draw(st.sampled_from(TOKENS))
            lines[i] = line[:pos] + piece.encode("utf-8", "surrogatepass") + line[pos:]
        elif op == "truncate":
            data = data[:draw(st.integers(0, len(data)))]
            continue
        elif op == "bytes":
            pos = draw(st.integers(0, len(data)))
            data = data[:pos] + draw(st.binary(min_size=1, max_size=8)) + data[pos:]
            continue
        data = b"\n".join(lines)
    return data


FUZZ = settings(derandomize=True, max_examples=400, deadline=None, database=None,
                suppress_health_check=list(HealthCheck))


@FUZZ
@given(mutated())
def test_mutated_models_compile_or_fail_cleanly(data):
    event(check_total(data))


@settings(derandomize=True, max_examples=300, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(token_mutated())
def test_token_mutated_models_compile_or_fail_cleanly(data):
    event(check_total(data))


@settings(derandomize=True, max_examples=60, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(st.binary(max_size=300))
def test_binary_garbage(data):
    check_total(data)


@settings(derandomize=True, max_examples=80, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(st.lists(st.sampled_from(TOKENS), max_size=25))
def test_token_soup(tokens):
    check_total("neuron Soup\n" + " ".join(tokens) + "\n")


@settings(derandomize=True, max_examples=80, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(st.lists(st.sampled_from(EXPR_TOKENS), min_size=1, max_size=12))
def test_expression_soup(tokens):
    """Random expressions in every place an expression may appear."""
    expr = " ".join(tokens)
    src = (f"neuron E\nconstants:\n    K = {expr}\nparameters:\n    a = {expr}\n    b = 1 ms\n"
           f"state:\n    v = {expr}\nequations:\n    q = {expr}\n    v' = ({expr}) / b\n"
           f"spike when v >= {expr}\nrefractory {expr}\nreset:\n    v = {expr}\n"
           f"on input(w):\n    v += {expr}\nobserve:\n    o = {expr}\n")
    check_total(src)


# ------------------------------------------------------------ edge cases


EDGE_CASES = {
    "empty": b"",
    "only_newlines": b"\n\n\n",
    "only_comment": b"# nothing here",
    "bom": b"\xef\xbb\xbfneuron X\nstate:\n    v = 0\n",
    "only_header": b"neuron X",
    "no_newline_at_end": b"neuron X\nstate:\n    v = 0",
    "crlf": b"neuron X\r\nstate:\r\n    v = 0\r\nequations:\r\n    v' = -v / 1 ms\r\n",
    "lone_cr": b"neuron X\rstate:\r    v = 0\r",
    "nul": b"neuron X\nstate:\n    v = 0\x00\n",
    "binary": bytes(range(256)) * 4,
    "utf16": "neuron X\nstate:\n    v = 0\n".encode("utf-16"),
    "parens_64": ("neuron X\nstate:\n    v = 0\nequations:\n    v' = " + "(" * 64 + "v" + ")" * 64
                  + " / 1 ms\n").encode(),
    "parens_1000": ("neuron X\nstate:\n    v = 0\nequations:\n    v' = " + "(" * 1000 + "v" + ")" * 1000
                    + "\n").encode(),
    "unclosed_parens": b"neuron X\nstate:\n    v = 0\nequations:\n    v' = " + b"(" * 5000,
    "long_sum": ("neuron X\nstate:\n    v = 0\nequations:\n    v' = (" + " + ".join(["v"] * 5000)
                 + ") / 1 ms\n").encode(),
    "many_args": ("neuron X\nstate:\n    v = 0\nequations:\n    v' = max(" + ", ".join(["v"] * 3000)
                  + ") / 1 ms\n").encode(),
    "deep_unary": ("neuron X\nstate:\n    v = 0\nequations:\n    v' = " + "-" * 5000 + "v / 1 ms\n").encode(),
    "deep_power": ("neuron X\nstate:\n    v = 0\nequations:\n    v' = " + "^".join(["v"] * 500)
                   + " / 1 ms\n").encode(),
    "deep_not": ("neuron X\nstate:\n    v = 0\nspike when " + "not " * 3000 + "v > 1\n").encode(),
    "deep_if": ("neuron X\nstate:\n    v = 0\nequations:\n    v' = " + "if v > 0 then " * 300 + "1"
                + " else 0" * 300 + "\n").encode(),
    "huge_int": b"neuron X\nparameters:\n    a = " + b"9" * 5000 + b"\nstate:\n    v = 0\n",
    "huge_float": b"neuron X\nparameters:\n    a = 1e308 GHz\nstate:\n    v = 0\n",
    "tiny_float": b"neuron X\nparameters:\n    a = 1e-400 ms\nstate:\n    v = a\n",
    "huge_power": b"neuron X\nstate:\n    v = 0\nequations:\n    v' = 10^10^10 * v / 1 ms\n",
    "huge_power_const": b"neuron X\nconstants:\n    c = 9^9^9\nstate:\n    v = c\n",
    "tiny_power": b"neuron X\nconstants:\n    c = (1/2)^(10^9)\nstate:\n    v = c\n",
    "huge_product": b"neuron X\nstate:\n    v = 0\nequations:\n    v' = v * 1e300 * 1e300 / 1 ms\n",
    "huge_unit_power": b"neuron X\nstate:\n    v = 1 mV^1000000000\n",
    "irrational_unit_power": b"neuron X\nstate:\n    v = (1 mV)^pi\n",
    "complex_const": b"neuron X\nconstants:\n    c = sqrt(-1)\nstate:\n    v = c\n",
    "complex_expr": b"neuron X\nstate:\n    v = 0\nequations:\n    v' = (-8)^(1/3) * v / 1 ms\n",
    "log_zero": b"neuron X\nstate:\n    v = log(0)\n",
    "zero_div": b"neuron X\nstate:\n    v = 0\nequations:\n    v' = v / 0 / 1 ms\n",
    "zero_over_zero": b"neuron X\nparameters:\n    a = 0/0\nstate:\n    v = 0\n",
    "bool_const": b"neuron X\nconstants:\n    c = 1 > 0\n    N = c\nparameters:\n    g[N] = 1\nstate:\n    v = 0\n",
    "vector_4097": b"neuron X\nstate:\n    v[4097] = 0\n",
    "vector_const_float": b"neuron X\nconstants:\n    N = 2.5\nstate:\n    v[N] = 0\n",
    "vector_const_huge": b"neuron X\nconstants:\n    N = 1e300\nstate:\n    v[N] = 0\n",
    "vector_size_name": b"neuron X\nparameters:\n    N = 3\nstate:\n    v[N] = 0\n",
    "dunder_model": b"neuron __import__\nstate:\n    v = 0\n",
    "dunder_everywhere": (b"neuron X\nconstants:\n    __c = 1\nparameters:\n    __a = 1\nstate:\n"
                          b"    __v = 0\nequations:\n    __q = 1\n    __v' = 1\non input(__w):\n"
                          b"    __v += __w\nobserve:\n    __o = 1\n"),
    "keywords_as_names": b"neuron if\nparameters:\n    then = 1\nstate:\n    else = 0\n",
    "long_line": b"neuron X\nstate:\n    v = 0\nequations:\n    v' = " + b"v*" * 20000 + b"tua\n",
    "many_lines": b"neuron X\nstate:\n" + b"".join(b"    v%d = %d\n" % (k, k) for k in range(3000)),
    "too_large": b"neuron X\nstate:\n    v = 0\n" + b"#" * 1_100_000 + b"\n",
    "unterminated_docstring": b'neuron X\n"""never closed\nstate:\n    v = 0\n',
    "docstring_everywhere": b'neuron X\nstate:\n    v = """doc"""\n',
    "refractory_everywhere": (b"neuron X\nstate:\n    v = refractory\nequations:\n    v' = refractory\n"
                              b"refractory refractory\nspike when refractory\n"),
    "self_reference": b"neuron X\nconstants:\n    c = c + 1\nparameters:\n    a = a\nstate:\n    v = v\n",
    "alias_self_cycle": b"neuron X\nstate:\n    v = 0\nequations:\n    a = a\n    v' = a\n",
    "unicode_units": b"neuron X\nparameters:\n    r = 1 M\xce\xa9\n    c = 1 \xc2\xb5F\nstate:\n    v = 0\n",
}


@pytest.mark.parametrize("name", sorted(EDGE_CASES))
def test_edge_cases(name):
    check_total(EDGE_CASES[name])


@pytest.mark.parametrize("name", ["huge_power", "huge_power_const", "tiny_power", "huge_product",
                                  "complex_const", "complex_expr", "log_zero", "zero_over_zero",
                                  "huge_float"])
def test_out_of_range_numbers_are_e029(name):
    with pytest.raises(CompileError) as info:
        compile_source(EDGE_CASES[name])
    assert [d.code for d in info.value.diagnostics] == ["E029"]


def test_samples_compile():
    for data in SAMPLES + MODELS:
        assert check_total(data) == "ok"


# ------------------------------------------------------------------- the CLI


@settings(derandomize=True, max_examples=12, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(mutated())
def test_cli_on_mutated_files(tmp_path_factory, data):
    d = tmp_path_factory.mktemp("cli")
    path = d / "m.neuron"
    path.write_bytes(data)
    for extra in ([], ["--check"], ["--json", "--check"], ["--explain"], ["--explain", "--json"],
                  ["-o", str(d / "out.py")]):
        with time_limit(20), contextlib.redirect_stdout(_Sink()), contextlib.redirect_stderr(_Sink()):
            status = compile_main([str(path), *extra])
        assert status in (0, 1)


class _Sink:
    def write(self, s):
        return len(s)

    def flush(self):
        pass
