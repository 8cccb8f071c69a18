"""Diagnostics: one invalid model per code, exact spans, rendering, no cascades.

Every file in ``tests/invalid/`` is named after the one diagnostic it must
produce (``E012_undefined_name.neuron``) and starts with a comment stating the
code and span: ``# expect: E012 8:15-8:22`` (line:column-end_line:end_column,
1-based, end exclusive). The corpus doubles as the examples in
``docs/language.md``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from eventax_dsl import CompileError, Span, compile_source
from eventax_dsl.language.diagnostics import CODES, Diagnostic

INVALID = Path(__file__).parent / "invalid"
FILES = sorted(INVALID.glob("*.neuron"))
_EXPECT = re.compile(rb"# expect: ([EW]\d{3}) (\d+):(\d+)-(\d+):(\d+)")

#: Expectations for corpus files that cannot carry an '# expect:' first line.
#: (Every current file can: even E001's invalid byte sits on a later line.)
EXPECT_OVERRIDES: dict[str, tuple[str, Span]] = {}

#: Codes no model text can produce: E000 is the CLI/`load` failing to read a file
#: (tested in test_cli.py).
NOT_FROM_TEXT = {"E000"}


def expectation(path: Path) -> tuple[str, Span]:
    if path.name in EXPECT_OVERRIDES:
        return EXPECT_OVERRIDES[path.name]
    m = _EXPECT.match(path.read_bytes())
    assert m, f"{path.name}: first line must be '# expect: CODE line:col-end_line:end_col'"
    code = m.group(1).decode()
    return code, Span(*(int(g) for g in m.groups()[1:]))


def diagnostics_of(data: bytes, name: str) -> tuple[list[Diagnostic], list[Diagnostic], str | None]:
    """(errors, warnings, source text) of compiling ``data``."""
    try:
        compiled = compile_source(data, name)
    except CompileError as err:
        return err.diagnostics, err.warnings, err.source
    return [], list(compiled.warnings), data.decode("utf-8")


def errors(src: str, name: str = "m.neuron") -> list[Diagnostic]:
    with pytest.raises(CompileError) as info:
        compile_source(src, name)
    return info.value.diagnostics


# ----------------------------------------------------------------- the corpus


def test_one_file_per_code():
    by_code = {}
    for path in FILES:
        code = path.name[:4]
        assert code in CODES, f"{path.name}: unknown code {code}"
        assert code not in by_code, f"two files for {code}: {by_code[code]} and {path.name}"
        assert re.fullmatch(r"[EW]\d{3}_[a-z0-9_]+\.neuron", path.name), path.name
        by_code[code] = path.name
    assert set(by_code) == set(CODES) - NOT_FROM_TEXT


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_corpus_file_gives_exactly_its_diagnostic(path):
    code, span = expectation(path)
    assert code == path.name[:4]
    errs, warns, source = diagnostics_of(path.read_bytes(), path.name)
    if code.startswith("W"):
        assert errs == [], [e.render(source, path.name) for e in errs]
        assert [(w.code, w.span) for w in warns] == [(code, span)]
        diag = warns[0]
    else:
        assert [(e.code, e.span) for e in errs] == [(code, span)], \
            "\n".join(e.render(source, path.name) for e in errs)
        diag = errs[0]
    assert diag.message and "\n" not in diag.message
    assert diag.severity == ("warning" if code.startswith("W") else "error")
    _check_rendered(diag, source, path.name)


def _check_rendered(diag: Diagnostic, source: str | None, name: str):
    """``file:line:col: error[CODE]: message``, the source line, a caret under the span."""
    s = diag.span
    out = diag.render(source, name).split("\n")
    assert out[0] == f"{name}:{s.line}:{s.column}: {diag.severity}[{diag.code}]: {diag.message}"
    gutter = f"{s.line:>5} | "
    line_text = source.split("\n")[s.line - 1].rstrip("\r")
    assert out[1].startswith(gutter)
    shown = out[1][len(gutter):]
    caret_line = out[2]
    assert caret_line.startswith(" " * (len(gutter) - 2) + "| ")
    carets = caret_line[len(gutter):]
    if len(line_text) <= 100:  # long lines are shown in a window
        assert len(shown) == len(line_text)
        assert carets == " " * (s.column - 1) + "^" * len(carets.lstrip())
        end = s.end_column if s.end_line == s.line else len(line_text) + 1
        assert len(carets.lstrip()) == max(1, min(end, len(line_text) + 1) - s.column)
    else:
        assert set(carets.strip()) == {"^"}
        col = len(carets) - len(carets.lstrip())
        assert shown[col] == line_text[s.column - 1]
    rest = out[3:]
    if diag.hint:
        assert rest == [f"      = hint: {diag.hint}"]
    else:
        assert rest == []


def test_e001_shows_the_line_with_a_replacement_character():
    path = INVALID / "E001_not_utf8.neuron"
    (err,), _, source = diagnostics_of(path.read_bytes(), path.name)
    text = err.render(source, path.name)
    assert "byte 0xe9 at offset" in err.message
    assert '    3 | """caf\ufffd au lait"""' in text
    assert text.split("\n")[2].endswith("|       ^")


def test_e001_column_counts_characters_not_bytes():
    data = 'neuron X\n"""\u00e9\u00e9 '.encode() + b"\xff" + b'"""\nstate:\n    v = 0\n'
    errs, _, _ = diagnostics_of(data, "x.neuron")
    assert [(e.code, e.span) for e in errs] == [("E001", Span(2, 7, 2, 8))]


def test_e005_file_too_large():
    errs = errors("neuron X\nstate:\n    v = 0\n" + "# padding\n" * 110_000)
    assert [e.code for e in errs] == ["E005"]
    assert errs[0].span is None
    assert errs[0].render(None, "big.neuron").startswith("big.neuron: error[E005]: ")


def test_e005_expression_too_deep_without_brackets():
    errs = errors("neuron X\nstate:\n    v = 0\nequations:\n    v' = " + "-" * 300 + "v / 1 ms\n")
    assert [e.code for e in errs] == ["E005"]
    assert errs[0].span.line == 5


# -------------------------------------------------------------- hints


def test_typo_hint_did_you_mean():
    path = INVALID / "E012_undefined_name.neuron"
    (err,), _, source = diagnostics_of(path.read_bytes(), path.name)
    assert err.hint == "did you mean 'tau_mem'?"
    rendered = err.render(source, path.name)
    assert rendered == (
        "E012_undefined_name.neuron:8:15: error[E012]: undefined name 'tau_men'\n"
        "    8 |     v' = -v / tau_men\n"
        "      |               ^^^^^^^\n"
        "      = hint: did you mean 'tau_mem'?"
    )


@pytest.mark.parametrize("src, code, hint", [
    ("v' = (expp(-v) - v) / tau_mem", "E019", "did you mean 'exp'?"),
    ("v' = -v / tau_mm", "E012", "did you mean 'tau_mem'?"),
    ("v' = -v / exp", "E012", "'exp' is a function: call it as exp(...)"),
    ("v' = -v / tau_mem(1)", "E019", "'tau_mem' is a parameter, not a function"),
    ("vv' = -v / tau_mem", "E013", "did you mean 'v'?"),
])
def test_hints(src, code, hint):
    (err,) = errors("neuron X\nparameters:\n    tau_mem = 10 ms\nstate:\n    v = 0\nequations:\n    "
                    + src + "\n")
    assert (err.code, err.hint) == (code, hint)


def test_keyword_as_name():
    # declaring an expression keyword as a name is E011 (it could never be used) ...
    errs = errors("neuron X\nparameters:\n    if = 1\nstate:\n    not = 0\nreset:\n    not = 1\n"
                  "observe:\n    not\n")
    assert [(e.code, e.span) for e in errs] == [("E011", Span(3, 5, 3, 7)), ("E011", Span(5, 5, 5, 8))]
    assert "keyword" in errs[0].message
    # ... and using one in an expression is simply an undefined name
    (err,) = errors("neuron X\nstate:\n    v = 0\nequations:\n    v' = -v / then\n")
    assert (err.code, err.message) == ("E012", "undefined name 'then'")


@pytest.mark.parametrize("line, word, keyword, col", [
    ("spike whenv >= 1", "whenv", "when", 7),    # the post-lexer sees 'when' + 'v'
    ("refractory 2 ms clampv", "clampv", "clamp", 17),
    ("refractory 2 ms clamp v keepinput", "keepinput", "keep", 25),
    ("on inputs(w):", "inputs", "input", 4),     # the lexer itself stops after 'input'
])
def test_a_keyword_glued_to_a_word_is_an_error(line, word, keyword, col):
    # 'clampv' used to parse as 'clamp v': keywords are keywords only as whole words
    lines = ["neuron X", "state:", "    v = 0", "equations:", "    v' = 1 / 10 ms",
             "spike when v >= 1", "refractory 2 ms", "on input(w):", "    v += w"]
    at = {"spike": 5, "refractory": 6, "on": 7}[line.split()[0]]
    lines[at] = line
    (err,) = errors("\n".join(lines) + "\n")
    assert (err.code, err.message) == ("E002", f"unexpected '{word}'")
    assert err.span == Span(at + 1, col, at + 1, col + len(word))
    rest = word[len(keyword):]
    assert err.hint == (f"'{keyword}' is a keyword; if '{rest}' is a separate word, "
                        "put a space before it")


@pytest.mark.parametrize("line, word, keyword, col", [
    ("refractory 2 msclamp v", "msclamp", "clamp", 14),    # lexed as the unit 'msclamp'
    ("refractory t_refclamp v", "t_refclamp", "clamp", 12),
    ("refractory 2 ms clamp vkeep input", "vkeep", "keep", 23),
])
def test_a_word_ending_in_a_keyword_is_named_with_a_hint(line, word, keyword, col):
    lines = ["neuron X", "parameters:", "    t_ref = 2 ms", "state:", "    v = 0", "    i = 0",
             "equations:", "    v' = (i - v) / 10 ms", "    i' = -i / 5 ms", "spike when v >= 1",
             line, "on input(w):", "    i += w"]
    (err,) = errors("\n".join(lines) + "\n")
    assert (err.code, err.message) == ("E002", f"unexpected '{word}'")
    assert err.span == Span(11, col, 11, col + len(word))
    head = word[:-len(keyword)]
    assert err.hint == (f"'{keyword}' is a keyword; if '{head}' is a separate word, "
                        "put a space after it")


def test_expected_tokens_are_those_that_can_really_follow():
    # LALR's merged lookahead used to offer ')' and ']' with no bracket open
    src = "neuron X\nparameters:\n    factor = 2\nstate:\n    v = 0\nequations:\n"
    (err,) = errors(src + "    v' = factor v / 10 ms\n")
    assert err.span == Span(7, 17, 7, 18) and err.hint is None  # not 'fact or v'
    assert err.message.startswith("unexpected 'v'; expected '(', '*' or '/', '+' or '-', '^'")
    assert "')'" not in err.message and "']'" not in err.message
    (err,) = errors(src + "    v' = (factor v) / 10 ms\n")
    assert "')'" in err.message and "end of line" not in err.message
    (err,) = errors(src + "    v' = (-v + ) / 10 ms\n")  # the atom 'refractory' is not offered
    assert err.message == "unexpected ')'; expected '(', '+' or '-', a name or a number"


def test_keep_input_parses_and_keep_stays_usable_as_a_name():
    src = ("neuron X\nparameters:\n    keep = 2 ms\nstate:\n    v = 0\n    i = 0\nequations:\n"
           "    v' = (i - v) / 10 ms\n    i' = -i / 5 ms\nspike when v >= 1\n"
           "refractory keep clamp v keep input\nreset:\n    v = 0\non input(w):\n    i += w\n")
    ir = compile_source(src).ir
    assert ir.keep_input and ir.clamped == ("v",) and str(ir.refractory) == "keep"
    ir = compile_source(src.replace(" keep input", "")).ir
    assert not ir.keep_input and ir.clamped == ("v",)
    # W003 when there is nothing for it to keep: no input rule at all
    compiled = compile_source(src.replace("on input(w):\n    i += w\n", ""))
    (warning,) = [w for w in compiled.warnings if w.code == "W003"]
    assert warning.message == "'keep input' has no effect: the model has no input rule"
    assert warning.span == Span(11, 25, 11, 35)
    assert not [w for w in compile_source(src).warnings if w.code == "W003"]


@pytest.mark.parametrize("word, usable", [
    ("when", True), ("clamp", True), ("keep", True), ("input", True), ("learnable", True),
    ("spike", False), ("reset", False), ("on", False), ("refractory", False), ("state", False),
])
def test_statement_keywords_are_names_outside_their_statement(word, usable):
    # docs/language.md, "Keywords": the five contextual ones can name a parameter
    src = f"neuron X\nparameters:\n    {word} = 2\nstate:\n    v = 0\nequations:\n    v' = -v / {word}\n"
    if usable:
        assert [p.name for p in compile_source(src).ir.params] == [word]
    else:
        assert errors(src)[0].code in ("E002", "E011")


@pytest.mark.parametrize("rhs", ["v + if v > 0 then 1 else 0", "v + if (v > 0) then 1 else 0",
                                 "v then"])
def test_if_inside_an_expression_needs_parentheses_hint(rhs):
    (err,) = errors("neuron X\nstate:\n    v = 0\nequations:\n    v' = " + rhs + "\n")
    assert err.code == "E002"
    assert err.hint == "an 'if ... then ... else ...' inside a larger expression must be in parentheses"


def test_unexpected_character_hints():
    (err,) = errors("neuron X\nstate: {\n    v = 0\n}\n")
    assert err.code == "E003" and "section:" in err.hint
    (err,) = errors('neuron X\nstate:\n    v = "a"\n')
    assert err.code == "E003" and "strings are not part of the language" in err.hint


# ----------------------------------------------------- one error per root cause

HEAD = "neuron X\nparameters:\n    tau = 10 ms\nstate:\n    v = 0\n    i = 0\n"


def test_undefined_name_used_three_times_is_one_error():
    errs = errors(HEAD + "equations:\n    v' = (tua - v) / tau\n    i' = (tua - i) / tau\n"
                  "spike when v >= tua\nreset:\n    v = 0\n")
    assert [(e.code, e.span) for e in errs] == [("E012", Span(8, 11, 8, 14))]


def test_error_inside_alias_is_not_repeated_where_it_is_used():
    errs = errors(HEAD + "equations:\n    drive = tua * 2\n    v' = (drive - v) / tau\n"
                  "    i' = (drive + 1 ms) / tau\nspike when v >= drive\n"
                  "observe:\n    d = drive * 2\n")
    assert [(e.code, e.span.line) for e in errs] == [("E012", 8)]


def test_unit_error_inside_alias_is_not_repeated_where_it_is_used():
    errs = errors(HEAD + "equations:\n    drive = v + 1 ms\n    v' = (drive - v) / tau\n"
                  "    i' = -i / tau\nspike when v >= drive\n")
    assert [(e.code, e.span) for e in errs] == [("E021", Span(8, 13, 8, 21))]


@pytest.mark.parametrize("decl, code", [
    ("    g\n", "E015"),                         # no default
    ("    g = 1 mss\n", "E022"),                 # unknown unit
    ("    g[2] = [1, 2, 3]\n", "E023"),           # wrong length
    ("    g[0] = 1\n", "E028"),                  # bad length
    ("    g = [1, 2]\n", "E034"),                # vector for scalar
    ("    g = tau\n", "E035"),                   # not constant
    ("    _g = 1\n", "E011"),                    # invalid name (then used as _g)
])
def test_a_broken_declaration_is_not_reported_again_where_used(decl, code):
    name = "_g" if "_g" in decl else "g"
    src = (f"neuron X\nparameters:\n    tau = 10 ms\n{decl}state:\n    v = 0\nequations:\n"
           f"    v' = ({name} * 1 mV - v) / tau + sum({name}) / 1 ms\n"
           f"spike when v >= {name}\nreset:\n    v = {name} * v\n")
    errs = errors(src)
    assert [e.code for e in errs] == [code], "\n".join(e.render(src, "m") for e in errs)


def test_broken_state_and_constant_are_not_reported_again():
    src = ("neuron X\nconstants:\n    N = 1 / 0\nparameters:\n    g[N] = 1\nstate:\n    v\n"
           "equations:\n    v' = v * sum(g) / 1 ms\nreset:\n    v = v + 1 ms\n")
    assert [e.code for e in errors(src)] == ["E029", "E014"]


@pytest.mark.parametrize("rule, message", [
    ("i += w * w", "not affine in the weight 'w'"),
    ("i += max(w, 0)", "not affine in the weight 'w'"),
    # SymPy differentiates the branches and would miss the kink at w = 0
    ("i += if w > 0 then w else 0", "not affine in the weight 'w' (a condition tests it)"),
    ("i += if w > 0 then 1 else 0", "not affine in the weight 'w' (a condition tests it)"),
    ("i += if v > 0 then w else 2 * w", None),  # a condition on the state: affine in w
])
def test_input_rule_must_be_affine_in_the_weights(rule, message):
    src = HEAD + f"equations:\n    v' = (i - v) / tau\n    i' = -i / tau\non input(w):\n    {rule}\n"
    if message is None:
        compile_source(src)
        return
    errs = errors(src)
    assert [(e.code, e.span) for e in errs] == [("E024", Span(11, 10, 11, 5 + len(rule)))]
    assert message in errs[0].message


@pytest.mark.parametrize("rhs, message, span", [
    # literals that underflow: the checker computes exactly, so 1e-99999999 would hang it,
    # 1e-5000 crashed it, and 1e-350 compiled to code dividing by 'inf'
    ("-v * 1e-350 / tau", "the number 1e-350 is too small for a float (it would be 0)", (7, 15, 7, 21)),
    ("(-v + 1e-99999999) / tau", "the number 1e-99999999 is too small", (7, 16, 7, 27)),
    ("(-v + 1e-310) / tau", "1e-310 is too small for a float (the smallest is 2.2e-308)", (7, 16, 7, 22)),
    ("-v / 1e-5000 ms", "the number 1e-5000 is too small", (7, 15, 7, 25)),
    # arithmetic on numbers that underflows
    ("-v * 1e-200 * 1e-200 / tau", "this evaluates to a number that is not a finite real float",
     (7, 10, 7, 30)),
])
def test_numbers_too_small_for_a_float(rhs, message, span):
    src = f"neuron X\nparameters:\n    tau = 10 ms\nstate:\n    v = 0\nequations:\n    v' = {rhs}\n"
    errs = errors(src)
    assert [(e.code, e.span) for e in errs] == [("E029", Span(*span))]
    assert message in errs[0].message
    # a zero written with an exponent is a zero
    compile_source(src.replace(rhs, "-v / tau + 0.000e-999 / (1 ms)"))


def test_a_function_of_numbers_that_overflows_is_e029():
    # SymPy keeps exp(1000) exact; in a parameter default it was E029, in an equation it
    # compiled to jnp.exp(1000) = inf
    src = ("neuron X\nparameters:\n    tau = 10 ms\nstate:\n    v = 0\nequations:\n"
           "    v' = -v / tau + exp(1000) / (1 ms)\n")
    errs = errors(src)
    assert [(e.code, e.span) for e in errs] == [("E029", Span(7, 21, 7, 30))]
    assert "(exp(1000))" in errs[0].message
    compile_source(src.replace("exp(1000)", "(exp(-1000) + log(2))"))  # 0 and a float: fine


def test_aliases_that_double_at_each_level_are_stopped():
    # a_k = sin(a_{k-1}) + cos(a_{k-1}): 24 short lines that stand for 2^24 terms (the
    # compiler ran for minutes); a_12 is the first past MAX_ALIAS_NODES (10 000)
    lines = ["    a0 = v"] + [f"    a{k} = sin(a{k - 1}) + cos(a{k - 1})" for k in range(1, 25)]
    src = ("neuron X\nparameters:\n    tau = 10 ms\nstate:\n    v = 0\nequations:\n"
           + "\n".join(lines) + "\n    v' = -a24 / tau\n")
    errs = errors(src)
    assert [(e.code, e.span.line) for e in errs] == [("E005", 19)]
    assert "'a12' stands for an expression of more than 10000 terms" in errs[0].message
    # eleven levels are fine
    compile_source(src.replace("a24 / tau", "a11 / tau").split("    a12")[0]
                   + "    v' = -a11 / tau\n")


def test_a_deep_chain_of_aliases_is_stopped_not_a_recursion_error():
    # a_k = sin(a_{k-1}): each line is short, but inlined they nest; about 140 links
    # exhausted Python's recursion limit inside SymPy ("internal error" in the CLI)
    def model(links):
        lines = ["    a0 = v"] + [f"    a{k} = sin(a{k - 1})" for k in range(1, links + 1)]
        return ("neuron X\nstate:\n    v = 0\nequations:\n" + "\n".join(lines)
                + f"\n    v' = a{links}\n")
    errs = errors(model(150))
    # a0 = v is 1 level, a_k is k + 1: a100 is the first past 100
    assert [(e.code, e.span) for e in errs] == [("E005", Span(105, 12, 105, 20))]
    assert "'a100' stands for an expression nested more than 100 levels deep" in errs[0].message
    compile_source(model(99))


def test_recursion_in_the_checker_is_a_diagnostic(monkeypatch):
    """The backstop behind the nesting limits: a RecursionError anywhere after parsing is
    an E005 for the file, never an exception of another kind."""
    import eventax_dsl.compiler as compiler

    def deep(*args, **kwargs):
        raise RecursionError("maximum recursion depth exceeded")
    monkeypatch.setattr(compiler, "check_with_warnings", deep)
    errs = errors("neuron X\nstate:\n    v = 0\nequations:\n    v' = -v / (1 ms)\n")
    assert [(e.code, e.span) for e in errs] == [("E005", None)]
    assert "nested too deeply" in errs[0].message


@pytest.mark.parametrize("tail, code, span, message", [
    # more than one inequality beside the guard was E018 ("must be an inequality")
    ("spike when v >= 1 and v <= 3 and not refractory\nrefractory 1 ms\n",
     "E026", Span(10, 12, 10, 29), "the only guard a spike condition may have"),
    ("spike when (v >= 1 or v < 0) and not refractory\nrefractory 1 ms\n",
     "E026", Span(10, 13, 10, 28), "the only guard a spike condition may have"),
    # a state clamped twice was accepted (CLAMPED = ('v', 'v'))
    ("spike when v >= 1\nrefractory 1 ms clamp v, i, v\n",
     "E025", Span(11, 29, 11, 30), "state 'v' is clamped twice"),
    # a built-in constant as a read-out was "undefined name 'pi'" (a constant of the
    # model's own, 'K', gives the same message)
    ("observe:\n    v\n    pi\n", "E012", Span(12, 5, 12, 7),
     "an observable cannot refer to the constant 'pi'"),
])
def test_spike_guard_clamp_and_observable_messages(tail, code, span, message):
    errs = errors(HEAD + "equations:\n    v' = (2 - v) / tau\n    i' = -i / tau\n" + tail)
    assert [(e.code, e.span) for e in errs] == [(code, span)]
    assert message in errs[0].message


def test_a_vector_length_with_a_unit_is_e028():
    # 'N = 3 ms' used to give a vector of length 3
    src = ("neuron X\nconstants:\n    N = 3 ms\n    M = 2\nstate:\n    v[N] = 0\n    u[M] = 0\n"
           "equations:\n    v' = -v / (1 ms)\n    u' = -u / (1 ms)\n")
    errs = errors(src)
    assert [(e.code, e.span) for e in errs] == [("E028", Span(6, 7, 6, 8))]
    assert "vector length 'N' has unit ms" in errs[0].message


def test_allowed_kinds_hint_spells_the_plural_of_alias():
    errs = errors(HEAD.replace("parameters:", "constants:\n    K = 2\nparameters:")
                  + "equations:\n    v' = -v / tau\n    i' = -i / tau\nobserve:\n    K\n")
    assert [e.code for e in errs] == ["E012"]
    assert "cannot refer to the constant 'K'" in errs[0].message
    assert errs[0].hint == "it may use aliases, parameters and states"


def test_several_independent_errors_in_one_pass():
    src = HEAD + ("    x = 0\n"
                  "equations:\n"
                  "    v' = (tua - v) / tau\n"            # E012
                  "    i' = (v - i) / tau + 1 ms\n"       # E021
                  "    q' = 1\n"                          # E013
                  "spike when v >= 1\n"
                  "reset:\n"
                  "    v = 0\n"
                  "    v = 1\n"                           # E025
                  "    tau = 1 ms\n"                      # E016
                  "on input(w):\n"
                  "    i += w * w\n"                      # E024
                  "observe:\n"
                  "    vv = expp(v)\n")                   # E019
    errs = errors(src)
    assert sorted(e.code for e in errs) == ["E012", "E013", "E016", "E019", "E021", "E024", "E025"]
    rendered = CompileError(errs, src, "m.neuron").render()
    assert rendered.count("error[") == 7


def test_syntax_error_is_reported_alone():
    # a parse error stops before checking: no guesses about the broken statement
    errs = errors(HEAD + "equations:\n    v' = (tua - v / tau\n    i' = + / tau\n")
    assert len(errs) == 1 and errs[0].code in ("E002", "E004")


# ---------------------------------------------------------------- rendering


def test_render_with_tabs_aligns_caret():
    src = "neuron X\nstate:\n\tv = 0\nequations:\n\tv' = -v / tua\n"
    (err,) = errors(src)
    lines = err.render(src, "t.neuron").split("\n")
    assert lines[1] == "    5 |  v' = -v / tua"
    assert lines[2] == "      | " + " " * 11 + "^^^"


@pytest.mark.parametrize("doc, pad", [
    ("\u8aac\u660e: \u65e5\u672c\u8a9e", 19),   # wide CJK characters: two cells each
    ("e\u0301e\u0301e\u0301", 10),                # combining accents: no cell of their own
])
def test_render_caret_counts_terminal_cells(doc, pad):
    src = f'neuron T\n"""{doc}""" state:\n    v = 0\n'
    (err,) = errors(src)
    text, caret = err.render(src, "t.neuron").split("\n")[1:3]
    assert text == f'    2 | """{doc}""" state:'
    assert caret == "      | " + " " * pad + "^^^^^"


def test_render_long_line_shows_a_window_around_the_caret():
    src = "neuron X\nstate:\n    v = 0\nequations:\n    v' = " + "v * " * 60 + "tua / 1 ms\n"
    (err,) = errors(src)
    text, caret = err.render(src, "t.neuron").split("\n")[1:3]
    assert len(text) <= 108
    col = caret.index("^")
    assert text[col:col + 3] == "tua"


def test_render_does_not_print_control_characters():
    src = "neuron X\nstate:\n    v = 0\nequations:\n    v' = -v / tua  # \x1b[31mred\x07\n"
    (err,) = errors(src)
    rendered = err.render(src, "t.neuron")
    assert "\x1b" not in rendered and "\x07" not in rendered
    assert rendered.split("\n")[2].endswith("^^^")


def test_render_counts_lines_like_the_parser():
    # form feed and U+2028 are not line breaks for the parser, so not for the renderer either
    src = 'neuron X\n"""a\u2028b"""\nstate:\n    v = 0\x0c\nequations:\n    v\' = -v / tua\n'
    (err,) = errors(src)
    assert err.span.line == 6
    assert "v' = -v / tua" in err.render(src, "t.neuron").split("\n")[1]


def test_render_without_source_or_span():
    d = Diagnostic("E012", "undefined name 'x'", Span(3, 1, 3, 2), "did you mean 'y'?")
    assert d.render(None, "f.neuron") == ("f.neuron:3:1: error[E012]: undefined name 'x'\n"
                                          "      = hint: did you mean 'y'?")
    d = Diagnostic("W001", "parameter 'a' is never used", None)
    assert d.render("", "f.neuron") == "f.neuron: warning[W001]: parameter 'a' is never used"


def test_eof_error_points_after_the_last_character():
    src = "neuron X\nstate:\n    v = 0\nequations:\n    v' = (1 - v\n\n\n"
    (err,) = errors(src)
    assert (err.code, err.span) == ("E004", Span(5, 16, 5, 17))


def test_json_form_of_a_diagnostic():
    d = Diagnostic("E021", "unit mismatch", Span(2, 3, 2, 9), "hint")
    assert d.to_json("a.neuron") == {"file": "a.neuron", "code": "E021", "severity": "error",
                                     "message": "unit mismatch", "line": 2, "column": 3,
                                     "end_line": 2, "end_column": 9, "hint": "hint"}


def test_compile_error_message_is_the_rendering():
    path = INVALID / "E010_duplicate_definition.neuron"
    with pytest.raises(CompileError) as info:
        compile_source(path.read_bytes(), path.name)
    assert str(info.value) == info.value.render()
    assert str(info.value).startswith("E010_duplicate_definition.neuron:5:5: error[E010]: ")


# ------------------------------------------------------------- documentation


def test_docs_show_every_code_with_the_real_rendering():
    """docs/language.md lists every code, and each example's output is what the compiler prints."""
    docs = (INVALID.parent.parent / "docs" / "language.md").read_text(encoding="utf-8")
    for code in CODES:
        assert f"\n### {code}\n" in docs, f"docs/language.md has no section for {code}"
    for path in FILES:
        errs, warns, source = diagnostics_of(path.read_bytes(), path.name)
        for d in errs or warns:
            assert d.render(source, path.name) in docs, f"docs/language.md: stale output for {path.name}"
