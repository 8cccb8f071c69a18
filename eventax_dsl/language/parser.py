"""Parse ``.neuron`` text into the typed syntax tree of :mod:`.ast`.

:func:`parse` is total: for any input (bytes included) it returns a
:class:`~.ast.Model` or raises :class:`~.diagnostics.CompileError` with one
diagnostic for the first syntax problem. It never raises anything else.
"""

from __future__ import annotations

import functools
import math
import sys
from pathlib import Path
from typing import NamedTuple

import lark
from lark import Token, Transformer, v_args

from . import ast
from .diagnostics import CompileError, Diagnostic, Span

LANGUAGE_VERSION = 1
MAX_SOURCE_BYTES = 1_000_000
MAX_NESTING = 64  # open brackets
MAX_EXPR_DEPTH = 200  # syntax tree depth of one expression

_GRAMMAR = Path(__file__).with_name("grammar.lark")

# Readable names for the grammar's terminals, used in "expected ..." messages.
_READABLE = {
    "NAME": "a name", "NUMBER": "a number", "INT": "an integer", "UNIT": "a unit",
    "_NL": "end of line", "$END": "end of file", "DOCSTRING": "a docstring",
    "LPAR": "'('", "RPAR": "')'", "LSQB": "'['", "RSQB": "']'", "COMMA": "','",
    "COLON": "':'", "EQUAL": "'='", "PRIME": "'", "ASSIGN_OP": "'=', '+=' or '-='",
    "COMPARE": "a comparison", "ADD_OP": "'+' or '-'", "MUL_OP": "'*' or '/'",
    "POW_OP": "'^'", "LEARNABLE": "'learnable'",
}
#: Keywords that may appear inside an expression (``refractory`` only as ``and not
#: refractory`` in a spike condition); the checker refuses them as declared names.
EXPRESSION_KEYWORDS = frozenset({"if", "then", "else", "and", "or", "not", "refractory"})


class _BracketNewlines:
    """Post-lexer: newlines inside (), [] do not end a statement; a keyword glued to the
    word after it (``whenv``, ``clampv``) is an error, not the keyword and a name."""

    always_accept = ("_NL",)

    def process(self, stream):
        depth = 0
        prev = None
        for tok in stream:
            if (prev is not None and _is_keyword(prev) and tok.start_pos == prev.end_pos
                    and _is_word_char(str(tok)[:1])):
                raise _Glued(prev)
            prev = tok
            if tok.type in ("LPAR", "LSQB"):
                depth += 1
                if depth > MAX_NESTING:
                    raise _TooDeep(tok)
            elif tok.type in ("RPAR", "RSQB"):
                depth = max(0, depth - 1)
            elif tok.type == "_NL" and depth:
                continue
            yield tok


class _TooDeep(Exception):
    def __init__(self, tok):
        self.tok = tok


class _Glued(Exception):
    """A keyword token directly followed by letters, digits or ``_``."""

    def __init__(self, tok):
        self.tok = tok


@functools.lru_cache(maxsize=1)
def _keywords() -> frozenset[str]:
    """The grammar's keywords: its literal terminals made of letters."""
    return frozenset(t.pattern.value for t in _parser().terminals
                     if t.pattern.type == "str" and t.pattern.value.isalpha())


def _is_keyword(tok: Token) -> bool:
    return tok.type not in ("NAME", "UNIT") and str(tok) in _keywords()


def _is_word_char(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


@functools.lru_cache(maxsize=1)
def _parser() -> lark.Lark:
    options = dict(parser="lalr", lexer="contextual", postlex=_BracketNewlines(),
                   propagate_positions=True, maybe_placeholders=False)
    grammar = _GRAMMAR.read_text(encoding="utf-8")
    try:  # the grammar analysis is cached in the temp dir: a 2x faster cold start
        return lark.Lark(grammar, cache=True, **options)
    except Exception:  # an unwritable or stale cache must never stop the compiler
        return lark.Lark(grammar, **options)


def _tok_span(tok: Token) -> Span:
    end_line = tok.end_line or tok.line
    end_col = tok.end_column or (tok.column + max(1, len(tok)))
    return Span(tok.line, tok.column, end_line, end_col)


def _meta_span(meta) -> Span:
    return Span(meta.line, meta.column, meta.end_line, meta.end_column)


def _join(a: Span, b: Span) -> Span:
    return Span(a.line, a.column, b.end_line, b.end_column)


def _strip_nl_span(tok: Token) -> Span:
    """Span of a statement-ending token, trimmed to its first character."""
    return Span.point(tok.line, tok.column)


class _KeepInput(NamedTuple):
    """``keep input`` after a refractory period (folded into :class:`~.ast.Refractory`)."""

    span: Span


@v_args(meta=True)
class _ToAST(Transformer):
    """Lark parse tree -> typed AST (called bottom-up)."""

    # --- expressions
    def number(self, meta, items):
        (tok,) = items
        return ast.Number(float(tok), str(tok), _tok_span(tok))

    def quantity(self, meta, items):
        num, unit = items
        return ast.Quantity(float(num), str(num), str(unit), _tok_span(unit),
                            _join(_tok_span(num), _tok_span(unit)))

    def name(self, meta, items):
        (tok,) = items
        return ast.Name(str(tok), _tok_span(tok))

    def refractory_flag(self, meta, items):
        return ast.RefractoryFlag(_meta_span(meta))

    def call(self, meta, items):
        func, *args = items
        return ast.Call(str(func), _tok_span(func), tuple(args), _meta_span(meta))

    def neg(self, meta, items):
        op, operand = items
        return ast.Neg(str(op), operand, _meta_span(meta))

    def binary(self, meta, items):
        left, op, right = items
        return ast.Binary(str(op), left, right, _meta_span(meta), _tok_span(op))

    def pow(self, meta, items):
        left, op, right = items
        return ast.Binary("^", left, right, _meta_span(meta), _tok_span(op))

    def compare(self, meta, items):
        left, op, right = items
        return ast.Compare(str(op), left, right, _meta_span(meta))

    def and_(self, meta, items):
        return ast.BoolOp("and", items[0], items[1], _meta_span(meta))

    def or_(self, meta, items):
        return ast.BoolOp("or", items[0], items[1], _meta_span(meta))

    def not_(self, meta, items):
        return ast.Not(items[0], _meta_span(meta))

    def piecewise(self, meta, items):
        cond, then, otherwise = items
        return ast.Piecewise(cond, then, otherwise, _meta_span(meta))

    def vector_literal(self, meta, items):
        unit = items[-1] if isinstance(items[-1], Token) and items[-1].type == "UNIT" else None
        elements = tuple(items[:-1] if unit is not None else items)
        return ast.VectorLiteral(elements, str(unit) if unit else None,
                                 _tok_span(unit) if unit else None, _meta_span(meta))

    # --- declarations
    def size(self, meta, items):
        (tok,) = items
        value = int(tok) if tok.type == "INT" else str(tok)
        return ast.Size(value, _tok_span(tok))

    def language(self, meta, items):
        return ("language", items[0])

    def model_header(self, meta, items):
        return ("header", items[0])

    def docstring(self, meta, items):
        text = str(items[0])[3:-3]
        return ("doc", _dedent_doc(text))

    def constant_decl(self, meta, items):
        name, value = items
        return ast.Constant(str(name), _tok_span(name), value, _join(_tok_span(name), value.span))

    def param_decl(self, meta, items):
        name, rest = items[0], items[1:]
        size = next((x for x in rest if isinstance(x, ast.Size)), None)
        learnable = any(isinstance(x, Token) and x.type == "LEARNABLE" for x in rest)
        default = next((x for x in rest if not isinstance(x, (ast.Size, Token))), None)
        end = default.span if default is not None else (size.span if size else _tok_span(name))
        return ast.Parameter(str(name), _tok_span(name), size, default, learnable,
                             _join(_tok_span(name), end))

    def state_decl(self, meta, items):
        name, rest = items[0], items[1:]
        size = next((x for x in rest if isinstance(x, ast.Size)), None)
        init = next((x for x in rest if not isinstance(x, (ast.Size, Token))), None)
        end = init.span if init is not None else (size.span if size else _tok_span(name))
        return ast.StateVar(str(name), _tok_span(name), size, init, _join(_tok_span(name), end))

    def ode(self, meta, items):
        name, _prime, expr = items
        return ast.ODE(str(name), _tok_span(name), expr, _join(_tok_span(name), expr.span))

    def alias(self, meta, items):
        name, expr = items
        return ast.Alias(str(name), _tok_span(name), expr, _join(_tok_span(name), expr.span))

    def spike_stmt(self, meta, items):
        return ast.Spike(items[0], _meta_span(meta))

    def clamp(self, meta, items):
        return tuple((str(t), _tok_span(t)) for t in items)

    def keep_input(self, meta, items):
        return _KeepInput(_meta_span(meta))

    def refractory_stmt(self, meta, items):
        duration, rest = items[0], items[1:]
        keep = rest[-1] if rest and isinstance(rest[-1], _KeepInput) else None
        clamped = rest[0] if rest and not isinstance(rest[0], _KeepInput) else ()
        end = keep.span if keep else clamped[-1][1] if clamped else duration.span
        return ast.Refractory(duration, clamped, _join(_meta_span(meta), end),
                              keep_input=keep.span if keep else None)

    def assignment(self, meta, items):
        target, op, expr = items
        return ast.Assignment(str(target), _tok_span(target), str(op), expr,
                              _join(_tok_span(target), expr.span))

    def reset_block(self, meta, items):
        return ast.Reset(tuple(items), _meta_span(meta))

    def channel(self, meta, items):
        name = items[0]
        size = items[1] if len(items) > 1 else None
        return ast.Channel(str(name), size, _tok_span(name))

    def input_block(self, meta, items):
        channels = tuple(x for x in items if isinstance(x, ast.Channel))
        assigns = tuple(x for x in items if isinstance(x, ast.Assignment))
        return ast.Input(channels, assigns, _meta_span(meta))

    def observable(self, meta, items):
        name = items[0]
        expr = items[1] if len(items) > 1 else None
        end = expr.span if expr is not None else _tok_span(name)
        return ast.Observable(str(name), _tok_span(name), expr, _join(_tok_span(name), end))

    def constants_block(self, meta, items):
        return ("constants", tuple(items), _meta_span(meta))

    def parameters_block(self, meta, items):
        return ("parameters", tuple(items), _meta_span(meta))

    def state_block(self, meta, items):
        return ("state", tuple(items), _meta_span(meta))

    def equations_block(self, meta, items):
        return ("equations", tuple(items), _meta_span(meta))

    def observe_block(self, meta, items):
        return ("observe", tuple(items), _meta_span(meta))

    def start(self, meta, items):
        return items


def _dedent_doc(text: str) -> str:
    lines = text.strip("\n").splitlines()
    indents = [len(line) - len(line.lstrip()) for line in lines[1:] if line.strip()]
    cut = min(indents, default=0)
    return "\n".join([lines[0].strip()] + [line[cut:] for line in lines[1:]]).strip() if lines else ""


def _tree_depth(tree) -> int:
    """Depth of a Lark tree, computed without recursion."""
    best, stack = 0, [(tree, 1)]
    while stack:
        node, d = stack.pop()
        best = max(best, d)
        if isinstance(node, lark.Tree):
            stack.extend((c, d + 1) for c in node.children)
    return best


def decode_source(data: bytes | str, filename: str = "<input>") -> str:
    """Bytes -> text, or E001 pointing at the first byte that is not UTF-8. A leading
    byte-order mark is dropped, from bytes or text (``open(path).read()`` keeps it)."""
    if isinstance(data, str):
        return data[1:] if data.startswith("\ufeff") else data
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        head = data[: exc.start]
        line = head.count(b"\n") + 1
        # column in characters of the line as shown (the bytes before the bad one are valid UTF-8)
        col = len(head[head.rfind(b"\n") + 1:].decode("utf-8")) + 1
        raise CompileError([Diagnostic(
            "E001", f"the file is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})",
            Span.point(line, col), "a .neuron file must be UTF-8 text")],
            data.decode("utf-8", "replace"), filename) from None
    return text[1:] if text.startswith("\ufeff") else text


def parse(source: bytes | str, filename: str = "<input>") -> ast.Model:
    """Parse ``.neuron`` source into a :class:`~.ast.Model`.

    Raises :class:`CompileError` (never anything else) on bad input.
    """
    text = decode_source(source, filename)
    if len(text.encode("utf-8", "surrogatepass")) > MAX_SOURCE_BYTES:
        _fail("E005", f"the file is larger than {MAX_SOURCE_BYTES} bytes", None, text, filename)
    if "\x00" in text:
        i = text.index("\x00")
        _fail("E003", "unexpected NUL character", _offset_span(text, i), text, filename,
              "a .neuron file must be text")
    padded = text if text.endswith("\n") else text + "\n"
    try:
        tree = _parser().parse(padded)
    except _Glued as exc:
        _glued(exc.tok.start_pos, exc.tok.end_pos, text, filename)
    except _TooDeep as exc:
        _fail("E005", f"brackets nested more than {MAX_NESTING} deep", _tok_span(exc.tok), text, filename)
    except lark.exceptions.UnexpectedCharacters as exc:
        ch = padded[exc.pos_in_stream] if exc.pos_in_stream < len(padded) else ""
        _fail("E003", f"unexpected character {ch!r}", Span.point(exc.line, exc.column), text, filename,
              _hint_for_char(ch))
    except lark.exceptions.UnexpectedToken as exc:
        _unexpected_token(exc, text, filename)
    except lark.exceptions.UnexpectedEOF:
        _fail("E004", "unexpected end of file", _eof_span(text), text, filename)
    except lark.exceptions.LarkError as exc:  # pragma: no cover - defensive
        _fail("E002", f"syntax error ({type(exc).__name__})", None, text, filename)

    if _tree_depth(tree) > MAX_EXPR_DEPTH:
        _fail("E005", f"an expression is nested more than {MAX_EXPR_DEPTH} levels deep",
              _deepest_span(tree), text, filename, "split it into aliases")
    items = _ToAST().transform(tree)
    return _assemble(items, text, filename)


def _deepest_span(tree) -> Span | None:
    best, where, stack = 0, None, [(tree, 1)]
    while stack:
        node, d = stack.pop()
        if isinstance(node, lark.Tree):
            if d > best and getattr(node.meta, "line", None):
                best, where = d, node.meta
            stack.extend((c, d + 1) for c in node.children)
    if where is None:
        return None
    return Span(where.line, where.column, where.line, where.column + 1)


def _eof_span(text: str) -> Span:
    """Just after the last character of the last non-blank line (lines end at '\\n' only)."""
    lines = text.split("\n")
    while len(lines) > 1 and not lines[-1].strip():
        lines.pop()
    return Span.point(len(lines), len(lines[-1].rstrip("\r")) + 1)


def _offset_span(text: str, i: int) -> Span:
    line = text.count("\n", 0, i) + 1
    col = i - (text.rfind("\n", 0, i) + 1) + 1
    return Span.point(line, col)


def _hint_for_char(ch: str) -> str | None:
    if ch in "{}":
        return "blocks are written as 'section:' followed by one statement per line"
    if ch in "\"'":
        return "strings are not part of the language (except the docstring after 'neuron NAME')"
    if ch == ";":
        return "statements end at the end of the line"
    return None


def _glued(start: int, split: int, text: str, filename, keyword_first: bool = True):
    """Fail on the word at ``start`` that is a keyword and more letters glued together,
    split at ``split``: ``clampv`` (keyword first) or ``msclamp`` (keyword last). Names the
    whole word."""
    end = split
    while end < len(text) and _is_word_char(text[end]):
        end += 1
    word, head, tail = text[start:end], text[start:split], text[split:end]
    at = _offset_span(text, start)
    if keyword_first:
        hint = f"'{head}' is a keyword; if {tail!r} is a separate word, put a space before it"
    else:
        hint = f"'{tail}' is a keyword; if {head!r} is a separate word, put a space after it"
    _fail("E002", f"unexpected {word!r}", Span(at.line, at.column, at.line, at.column + len(word)),
          text, filename, hint)


def _keyword_tail(text: str, pos: int) -> tuple[int, int] | None:
    """``(start, split)`` when the word ending just before ``pos`` (spaces skipped) ends in a
    keyword that, split off with a space, lets the parse get past ``pos``: ``2 msclamp v``
    lexes as the unit ``msclamp`` and fails at ``v``, while ``2 ms clamp v`` parses."""
    end = len(text[:pos].rstrip(" \t"))
    start = end - len(_word_before(text, pos))
    word = text[start:end]
    # operators are left out: 'factor v' parses as 'fact or v', but the name was meant
    for kw in sorted(_keywords() - EXPRESSION_KEYWORDS, key=len, reverse=True):
        if len(word) > len(kw) and word.endswith(kw):
            split = end - len(kw)
            trial = text[:split] + " " + text[split:]
            try:
                _parser().parse(trial if trial.endswith("\n") else trial + "\n")
            except (lark.exceptions.UnexpectedInput, _Glued, _TooDeep) as exc:
                at = exc.tok.start_pos if isinstance(exc, (_Glued, _TooDeep)) else exc.pos_in_stream
                if at is None or at <= pos + 1:  # + 1: the inserted space
                    continue
            return start, split
    return None


def _unexpected_token(exc, text, filename):
    tok = exc.token
    pos = tok.start_pos
    if (tok.type not in ("$END", "_NL") and pos and _is_word_char(str(tok)[:1])
            and _is_word_char(text[pos - 1])):
        start = pos  # the token is the tail of a word: a keyword before it took the rest
        while start and _is_word_char(text[start - 1]):
            start -= 1
        if text[start:pos] in _keywords():
            _glued(start, pos, text, filename)
    if tok.type != "$END" and pos and (split := _keyword_tail(text, pos)):
        _glued(*split, text, filename, keyword_first=False)
    expected = sorted({_READABLE.get(t, _keyword_name(t)) for t in _acceptable(exc)} - {None})
    if tok.type == "$END":
        _fail("E004", "unexpected end of file" + (f"; expected {_one_of(expected)}" if expected else ""),
              _eof_span(text), text, filename)
    shown = "end of line" if tok.type == "_NL" else repr(str(tok))
    span = _strip_nl_span(tok) if tok.type == "_NL" else _tok_span(tok)
    hint = None
    if tok.type == "_NL" and exc.expected & {"NAME", "NUMBER", "LPAR"}:
        hint = "the statement is incomplete"
    elif "NAME" in exc.expected and (
            str(tok) in _keywords() - {"keep"}):  # 'keep' stays usable as a name
        hint = f"'{tok}' is a keyword and cannot be used as a name"
    elif str(tok) in ("then", "else") or (tok.start_pos is not None
                                          and _word_before(text, tok.start_pos) == "if"):
        # 'v + if c then a else b': after an operator 'if' reads as a name
        hint = "an 'if ... then ... else ...' inside a larger expression must be in parentheses"
    _fail("E002", f"unexpected {shown}" + (f"; expected {_one_of(expected)}" if expected else ""),
          span, text, filename, hint)


def _acceptable(exc) -> set[str]:
    """The terminals that could really come next. LALR's ``exc.expected`` is the merged
    lookahead of the state, which names ')' outside brackets; replaying each on a copy of
    the parser (``accepts``) keeps only those that can be shifted."""
    try:
        accepted = set(exc.interactive_parser.accepts()) or set(exc.expected)
    except Exception:  # pragma: no cover - the plain set is still a fair answer
        accepted = set(exc.expected)
    # the 'refractory' atom is grammatical wherever a name is, but only meant after 'and not'
    return accepted - {"REFRACTORY"} if len(accepted) > 1 else accepted


def _word_before(text: str, pos: int) -> str:
    """The word that ends just before ``pos`` (spaces skipped), or ''."""
    head = text[:pos].rstrip(" \t")
    i = len(head)
    while i and (head[i - 1].isalnum() or head[i - 1] == "_"):
        i -= 1
    return head[i:]


def _keyword_name(terminal: str) -> str | None:
    if terminal.startswith("__ANON") or terminal.startswith("_"):
        return None
    return f"'{terminal.lower()}'"


def _one_of(names: list[str]) -> str:
    if len(names) > 6:
        names = names[:6] + ["..."]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def _fail(code, message, span, text, filename, hint=None):
    raise CompileError([Diagnostic(code, message, span, hint)], text, filename)


def _assemble(items, text, filename) -> ast.Model:
    """Collect the transformed sections into one Model; flags repeated sections."""
    diags = []
    version = LANGUAGE_VERSION
    name, name_span, doc = "", Span.point(1, 1), ""
    blocks: dict[str, tuple] = {}
    single: dict[str, object] = {}  # spike, refractory, reset, on input
    seen_spans: dict[str, Span] = {}

    lines = text.split("\n")

    def header(span):  # the first line of a section, without a trailing comment
        first = lines[span.line - 1][span.column - 1:] if span.line <= len(lines) else ""
        first = first.split("#", 1)[0].rstrip()
        return Span(span.line, span.column, span.line, span.column + max(1, len(first)))

    def once(kind, span):
        if kind in seen_spans:
            diags.append(Diagnostic("E032", f"section '{kind}' given twice", header(span),
                                    f"first given at line {seen_spans[kind].line}; merge the two"))
            return False
        seen_spans[kind] = span
        return True

    for item in items:
        if isinstance(item, tuple) and item[0] == "language":
            tok = item[1]
            value = float(tok)
            if value != LANGUAGE_VERSION:
                diags.append(Diagnostic("E006", f"language version {tok} is not supported",
                                        _tok_span(tok), f"this compiler reads version {LANGUAGE_VERSION}"))
        elif isinstance(item, tuple) and item[0] == "header":
            name, name_span = str(item[1]), _tok_span(item[1])
        elif isinstance(item, tuple) and item[0] == "doc":
            doc = item[1]
        elif isinstance(item, tuple):
            kind, body, span = item
            if once(kind, span):
                blocks[kind] = body
        elif type(item) in _SINGLE_SECTIONS:
            kind = _SINGLE_SECTIONS[type(item)]
            if once(kind, item.span):
                single[kind] = item
    if diags:
        raise CompileError(diags, text, filename)
    model = ast.Model(
        name=name, name_span=name_span, language=version, doc=doc,
        constants=blocks.get("constants", ()), parameters=blocks.get("parameters", ()),
        states=blocks.get("state", ()), equations=blocks.get("equations", ()),
        spike=single.get("spike"), refractory=single.get("refractory"), reset=single.get("reset"),
        input=single.get("on input"), observables=blocks.get("observe"),
    )
    for e in ast.expressions(model):
        for num in ast.walk(e):
            if isinstance(num, (ast.Number, ast.Quantity)):
                problem = _out_of_range(num)
                if problem:
                    raise CompileError([Diagnostic("E029", f"the number {num.text} {problem}", num.span)],
                                       text, filename)
    return model


def _out_of_range(num) -> str:
    """Why a number literal cannot be a float (``""`` if it can): infinite, or so small
    that it would be subnormal or 0 (the checker computes with it exactly, so ``1e-99999999``
    must not get that far)."""
    if not math.isfinite(num.value):
        return "is not finite"
    if num.value == 0.0:
        mantissa = num.text.lower().split("e")[0]
        return "" if not mantissa.strip("0.") else "is too small for a float (it would be 0)"
    if abs(num.value) < sys.float_info.min:
        return f"is too small for a float (the smallest is {sys.float_info.min:.1e})"
    return ""


_SINGLE_SECTIONS = {ast.Spike: "spike", ast.Refractory: "refractory", ast.Reset: "reset",
                    ast.Input: "on input"}
