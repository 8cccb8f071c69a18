"""A ``.neuron`` file is data: nothing in it (or in its file name) becomes code.

The generated module may contain user text only as string literals (via
``repr``) and as validated identifiers. These tests check that by walking the
generated Python AST, by executing generated modules built from hostile
inputs and checking that no injected statement ran, and by checking that
names which collide with Python keywords, builtins or the generated code's own
names are renamed and the model still computes the same thing.
"""

from __future__ import annotations

import ast
import builtins
import keyword
import os
import re

import jax.numpy as jnp
import numpy as np
import pytest

from eventax_dsl import CompileError, compile_source
from eventax_dsl.codegen import py_name
from eventax_dsl.compiler import class_from_source

SENTINEL = "EVENTAX_DSL_INJECTED"

#: every identifier the code generator itself writes (module, class, methods, locals)
GENERATED = {
    # imports and contract names
    "jax", "jnp", "rt", "eventax_dsl", "runtime", "contract", "ChannelSpec", "NeuronModel", "ParamSpec",
    "StateSpec",
    # class attributes and methods
    "__doc__", "NAME", "DOC", "SOURCE_FILE", "SOURCE_SHA256", "COMPILER_VERSION", "STATES", "PARAMETERS",
    "CHANNELS", "OBSERVABLES", "SPIKING", "REFRACTORY", "GUARDED", "CLAMPED", "KEEP_INPUT",
    "LINEAR_BLOCKS",
    "init", "dynamics", "spike_condition", "reset", "refractory_period", "receive", "observe",
    # exact integration (closed forms of linear blocks)
    "EXACT_STATES", "EXACT_SPIKE", "flow", "flow_clamped", "spike_rates",
    # arguments and locals
    "self", "p", "s", "w", "dt", "_dtype", "_out", "dict",
}
#: jnp.<attr> and rt.<attr> the printer may emit
ATTRIBUTES = {"exp", "log", "sqrt", "tanh", "sinh", "cosh", "sin", "cos", "tan", "arctan", "abs", "sum",
              "minimum", "maximum", "where", "logical_and", "logical_or", "logical_not", "pi", "e", "nan",
              "ones", "zeros", "asarray", "float32", "float64", "sigmoid", "exprel", "fill", "fill_like",
              "float_dtype", "numpy", "exp_divdiff", "vsum", "guard"}
_TEMP = re.compile(r"_t\d+$")


def model_names(src: str) -> set[str]:
    """Every identifier-like word of the model text (a superset of its declared names)."""
    return set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", src))


def assert_only_allowed_identifiers(generated: str, names: set[str]):
    """Every identifier in the generated module is generated or a (renamed) model name."""
    allowed = GENERATED | {py_name(n) for n in names if not n.startswith("_")}
    tree = ast.parse(generated)
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            assert node.id in allowed or _TEMP.match(node.id), f"unexpected name {node.id!r}"
        elif isinstance(node, ast.Attribute):
            assert node.attr in ATTRIBUTES, f"unexpected attribute .{node.attr}"
            assert isinstance(node.value, ast.Name) and node.value.id in ("jnp", "rt"), ast.dump(node)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            assert node.name in allowed, node.name
        elif isinstance(node, ast.arg):
            assert node.arg in ("self", "p", "s", "w", "dt"), node.arg
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            mods = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
            assert all(m in ("jax.numpy", "eventax_dsl", "eventax_dsl.contract", "runtime", "ChannelSpec",
                             "NeuronModel", "ParamSpec", "StateSpec", "") for m in mods), mods
        elif isinstance(node, (ast.Lambda, ast.Global, ast.Nonlocal, ast.Delete, ast.With, ast.Try,
                               ast.Raise, ast.Await, ast.Yield, ast.While, ast.For)):
            raise AssertionError(f"unexpected construct {type(node).__name__}")
    # comments are the only other place text could hide: just the two fixed header lines
    for line in generated.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            assert stripped.startswith(("# source: ", "# sha256: ")), line


def compile_and_run(src: str | bytes, filename: str = "m.neuron"):
    """Compile, check the generated AST, execute the module; return (compiled, class)."""
    os.environ.pop(SENTINEL, None)
    compiled = compile_source(src, filename)
    text = src if isinstance(src, str) else src.decode("utf-8")
    assert_only_allowed_identifiers(compiled.source, model_names(text))
    cls = class_from_source(compiled.source, "eventax_security_test")
    assert SENTINEL not in os.environ, "an injected statement ran"
    return compiled, cls


LIF = '''neuron LIF
"""{doc}"""
parameters:
    tau = 10 ms
state:
    v = 0
equations:
    v' = (1.5 - v) / tau
spike when v >= 1
reset:
    v = 0
on input(w):
    v += w
'''

INJECT = f"__import__('os').environ.__setitem__('{SENTINEL}', '1')"

# ------------------------------------------------------------ identifiers


@pytest.mark.parametrize("name", ["__import__", "__class__", "_x", "__builtins__", "_", "__", "_0",
                                  "__init__", "__dict__"])
@pytest.mark.parametrize("where", ["constant", "parameter", "state", "alias", "channel", "observable"])
def test_underscore_names_are_rejected(name, where):
    decl = {
        "constant": f"constants:\n    {name} = 1\n",
        "parameter": f"parameters:\n    {name} = 1\n",
        "state": f"state:\n    {name} = 0\n",
        "alias": f"equations:\n    {name} = v * 2\n",
        "channel": f"on input({name}):\n    v += {name}\n",
        "observable": f"observe:\n    {name} = v\n",
    }[where]
    src = "neuron X\nstate:\n    v = 0\n" + decl if where != "state" else "neuron X\n" + decl + "    v = 0\n"
    with pytest.raises(CompileError) as info:
        compile_source(src, "m.neuron")
    assert [d.code for d in info.value.diagnostics] == ["E011"], info.value.render()
    assert name in info.value.diagnostics[0].message


@pytest.mark.parametrize("name", ["__import__", "_Model"])
def test_underscore_model_name_is_rejected(name):
    with pytest.raises(CompileError) as info:
        compile_source(f"neuron {name}\nstate:\n    v = 0\n", "m.neuron")
    assert [d.code for d in info.value.diagnostics] == ["E011"]


@pytest.mark.parametrize("text", ["caf\u00e9 = 1", "\uff56 = 1", "v\u200b = 1", "\u0430 = 1"])
def test_non_ascii_identifiers_are_rejected(text):
    # fullwidth letters, zero-width spaces and Cyrillic look-alikes never become Python names
    with pytest.raises(CompileError) as info:
        compile_source(f"neuron X\nstate:\n    v = 0\nparameters:\n    {text}\n", "m.neuron")
    assert info.value.diagnostics[0].code == "E003"


# names that are Python keywords / soft keywords / builtins / names of the generated code
AWKWARD = ["lambda", "print", "jnp", "self", "class", "def", "import", "exec", "eval", "open", "None",
           "True", "match", "type", "rt", "jax", "p", "s", "w", "dict", "NeuronModel", "t_0", "float",
           "os", "sys", "getattr"]
PLAIN = [f"n{k}" for k in range(len(AWKWARD))]


def _names_model(names: list[str], model: str) -> str:
    a, b, c, d, e_, f, g = names[:7]
    params = "".join(f"    {n} = {k + 2}\n" for k, n in enumerate(names[7:]))
    extra = " + ".join(names[7:])
    return (f"neuron {model}\n"
            f"parameters:\n    {a} = 10 ms\n    {b} = 1\n{params}"
            f"state:\n    {c} = {b} * 0.5\n    {d} = 0\n"
            f"equations:\n    {e_} = {c} + {d}\n"
            f"    {c}' = (-{c} + {d} + 0.01 * ({extra})) / {a}\n"
            f"    {d}' = -{d} / (2 * {a}) + {e_} / (1000 * {a})\n"
            f"spike when {c} >= {b}\n"
            f"reset:\n    {c} -= {b}\n    {d} = {d} * 0.5\n"
            f"on input({f}, {g}):\n    {d} += {f} - 0.5 * {g}\n"
            f"observe:\n    {c}\n    {e_}\n")


def test_keywords_and_builtins_as_names_are_renamed_and_the_model_still_works():
    awkward_src = _names_model(AWKWARD, "lambda")
    plain_src = _names_model(PLAIN, "Plain")
    compiled, Awkward = compile_and_run(awkward_src)
    _, Plain = compile_and_run(plain_src)
    for name in AWKWARD[:2] + AWKWARD[7:]:
        assert f"{py_name(name)} = p[{name!r}]" in compiled.source
    assert Awkward.__name__ == "_lambda"
    assert [p.name for p in Awkward.PARAMETERS] == AWKWARD[:2] + AWKWARD[7:]
    rename = dict(zip(AWKWARD, PLAIN))
    pa, pp = Awkward.create(3), Plain.create(3)
    sa, sp_ = pa.initial_state(), pp.initial_state()
    sa = {k: v + 0.3 * jnp.arange(3) for k, v in sa.items()}
    sp_ = {rename[k]: v for k, v in sa.items()}
    for method, args in [("vector_field", ()), ("apply_reset", (jnp.array([True, False, True]),))]:
        out_a, out_p = getattr(pa, method)(sa, *args), getattr(pp, method)(sp_, *args)
        for k in out_a:
            np.testing.assert_allclose(out_a[k], out_p[rename[k]], rtol=1e-6)
    np.testing.assert_allclose(pa.spike_conditions(sa), pp.spike_conditions(sp_), rtol=1e-6)
    w_a = {AWKWARD[5]: jnp.ones(3), AWKWARD[6]: 2 * jnp.ones(3)}
    w_p = {rename[k]: v for k, v in w_a.items()}
    ia, ip = pa.apply_input(sa, w_a), pp.apply_input(sp_, w_p)
    for k in ia:
        np.testing.assert_allclose(ia[k], ip[rename[k]], rtol=1e-6)
    oa, op = pa.observables(sa), pp.observables(sp_)
    assert set(oa) == {AWKWARD[2], AWKWARD[4]}
    for k in oa:
        np.testing.assert_allclose(oa[k], op[rename[k]], rtol=1e-6)


def test_renamed_name_does_not_collide_with_a_declared_name():
    src = ("neuron X\nparameters:\n    lambda = 2\n    lambda_ = 3\nstate:\n    v = 1\n"
           "equations:\n    v' = -(lambda + 10 * lambda_) * v / 1 ms\n")
    _, cls = compile_and_run(src)
    pop = cls.create(1)
    np.testing.assert_allclose(pop.vector_field(pop.initial_state())["v"], [-32.0])


def test_parameter_named_like_a_generated_local():
    src = "neuron X\nparameters:\n    dtype = 2\nstate:\n    v = dtype\nequations:\n    v' = -v / 1 ms\n"
    _, cls = compile_and_run(src)
    pop = cls.create(1)
    np.testing.assert_allclose(pop.initial_state()["v"], [2.0])


# ------------------------------------------------------ docstrings and file names

DOCS = [
    'plain text',
    'ends with a backslash \\',
    'a literal \\n and \\t and \\x00 and \\u2028',
    "quote ' and double quote \" inside",
    '"); ' + INJECT + '; ("x',
    "'); import os; ('",
    "'''" + INJECT + "'''",
    "line one\n    " + INJECT + "\n    line three",
    "\n\n  \n",
    "unicode: \u00e9\u00fc\u00df \u4e2d\u6587 \U0001f600 \u03bc\u03a9 \u00b5",
    "line separator\u2028paragraph separator\u2029next line\x85end",
    "carriage\rreturn and form\x0cfeed and bell\x07 and escape\x1b[31m",
    "{doc} {0} %s %(x)s",
    "#" + INJECT,
    "\"starts with a quote",
]

#: docstrings the language cannot express (they end early): a syntax error, never code
BAD_DOCS = [
    "ends with a quote\"",
    '"); ' + INJECT + '; ("',
    "\\\"\"\" + " + INJECT + " + \"\"\"\\",
    'a""" + ' + INJECT + ' + """b',
]


@pytest.mark.parametrize("doc", DOCS)
def test_docstring_text_cannot_inject_code(doc):
    compiled, cls = compile_and_run(LIF.replace("{doc}", doc))
    assert INJECT not in "".join(n.id for n in ast.walk(ast.parse(compiled.source))
                                 if isinstance(n, ast.Name))
    # the text survives (dedented) in the class docstring
    first = doc.strip().splitlines()[0].strip() if doc.strip() else ""
    if first:
        assert first in cls.__doc__ or first.strip() in cls.__doc__


@pytest.mark.parametrize("doc", BAD_DOCS)
def test_docstring_cannot_contain_its_own_terminator(doc):
    # the docstring ends at the first '"""': whatever follows is model text and must parse as such
    with pytest.raises(CompileError) as info:
        compile_source(LIF.replace("{doc}", doc), "m.neuron")
    assert info.value.diagnostics[0].code in ("E002", "E003")
    assert SENTINEL not in os.environ


@pytest.mark.parametrize("filename", [
    "x.neuron\nimport os; os.environ['" + SENTINEL + "'] = '1'\n#",
    "x.neuron'); " + INJECT + "; ('",
    'x.neuron"""\n' + INJECT + '\n"""',
    "x.neuron\\",
    "x.neuron\r\n" + INJECT,
    "\u00e9\u4e2d\U0001f600.neuron",
    "x.neuron\x00\x1b[2J",
    "x.neuron\udcff",  # a non-UTF-8 byte in a POSIX file name
])
def test_file_name_cannot_inject_code(filename):
    compiled, cls = compile_and_run(LIF.replace("{doc}", "doc"), filename)
    assert cls.SOURCE_FILE == filename
    # the name appears only as a repr() string literal, never as raw text
    assert repr(filename) in compiled.source
    lines = compiled.source.splitlines()
    assert not any(line.lstrip().startswith(("import os", "__import__", "x.neuron")) for line in lines)


@pytest.mark.parametrize("filename", ["x.neuron\n" + INJECT, "x.neuron'); " + INJECT + "; ('"])
def test_file_name_in_diagnostics_is_not_executed(filename):
    with pytest.raises(CompileError) as info:
        compile_source("neuron X\nstate:\n    v = 0\nequations:\n    v' = tua\n", filename)
    assert info.value.render().startswith(filename + ":5:10: error[E012]")
    assert SENTINEL not in os.environ


def test_expressions_are_printed_from_the_checked_tree_not_the_source_text():
    # nothing spelled in an expression reaches Python except numbers and validated names
    src = ("neuron X\nparameters:\n    tau = 10 ms\nstate:\n    v = 0\nequations:\n"
           "    v' = (exp(-v) * 1e-3 + 0.5 ^ 2 - max(v, 1, 2) + clip(v, 0, 1) + sigmoid(v) + "
           "(if v > 0 and not v > 1 then 1 else 2) + pi * e) / tau\nobserve:\n    q = tanh(v) + sum(v)\n")
    with pytest.raises(CompileError):  # sum() of a scalar is an error: check the rest separately
        compile_source(src, "m.neuron")
    compiled, cls = compile_and_run(src.replace(" + sum(v)", ""))
    tree = ast.parse(compiled.source)
    numbers = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)
               and isinstance(n.value, (int, float)) and not isinstance(n.value, bool)]
    assert all(np.isfinite(numbers))
    pop = cls.create(2)
    assert np.all(np.isfinite(pop.vector_field(pop.initial_state())["v"]))


def test_generated_sources_of_the_library_use_only_allowed_identifiers():
    from pathlib import Path

    paths = sorted((Path(__file__).resolve().parent.parent / "models").glob("*.neuron"))
    for path in paths:
        text = path.read_text(encoding="utf-8")
        compiled = compile_source(text, str(path))
        assert_only_allowed_identifiers(compiled.source, model_names(text))


def test_reserved_words_are_all_renamed():
    for name in keyword.kwlist + keyword.softkwlist + ["print", "jnp", "self", "rt", "jax", "p", "s", "w"]:
        if name.isidentifier() and not name.startswith("_"):
            new = py_name(name)
            assert new != name and not keyword.iskeyword(new) and new not in dir(builtins)
