"""Diagnostics: source spans, error codes and their rendering.

Every problem the compiler finds in a ``.neuron`` file becomes a
:class:`Diagnostic` with a stable code (``E012``), a :class:`Span` in the
source and an optional hint. They are rendered like a C compiler's::

    models/bad.neuron:12:9: error[E012]: undefined name 'tau_men'
       12 |     v' = -v / tau_men
          |               ^^^^^^^
       = hint: did you mean 'tau_mem'?

The compiler never lets a Python exception escape for bad input; it raises
:class:`CompileError` carrying the list of diagnostics instead.
"""

from __future__ import annotations

import difflib
import unicodedata
from dataclasses import dataclass, field

#: Every diagnostic code with a one-line summary (docs/language.md has examples).
CODES: dict[str, str] = {
    "E000": "the file cannot be read",
    "E001": "the file is not UTF-8 text",
    "E002": "syntax error: unexpected token",
    "E003": "syntax error: unexpected character",
    "E004": "syntax error: unexpected end of file",
    "E005": "expression nested too deeply or file too large",
    "E006": "unsupported language version",
    "E010": "duplicate definition",
    "E011": "invalid identifier",
    "E012": "undefined name",
    "E013": "equation for something that is not a state",
    "E014": "state without an initial value",
    "E015": "parameter without a default value",
    "E016": "assignment to something that is not a state",
    "E017": "cycle among aliases",
    "E018": "spike condition is not an inequality",
    "E019": "unknown function",
    "E020": "wrong number of arguments",
    "E021": "unit mismatch",
    "E022": "unknown unit",
    "E023": "vector length mismatch",
    "E024": "input rule is not affine in the weights",
    "E025": "state assigned twice in one rule",
    "E026": "unsupported spike guard",
    "E027": "'refractory' used without a refractory period",
    "E028": "invalid vector length",
    "E029": "value is not a finite number",
    "E030": "condition used as a number, or a number as a condition",
    "E031": "weight channel used outside its input rule",
    "E032": "section given twice",
    "E033": "model has no state",
    "E034": "vector given where a scalar is required",
    "E035": "value must be a constant expression",
    "E036": "spike condition reads no state",
    "E037": "negative refractory period",
    "W001": "unused parameter",
    "W002": "state never changes",
    "W003": "'keep input' without effect",
}


_MAX_SHOWN = 100  # longest source line shown in full


def _cells(text: str) -> int:
    """How many terminal columns ``text`` takes: two for wide (East Asian) characters,
    none for combining marks and other zero-width ones, one otherwise."""
    width = 0
    for ch in text:
        if unicodedata.combining(ch) or unicodedata.category(ch) in ("Mn", "Me", "Cf"):
            continue
        width += 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    return width


@dataclass(frozen=True, order=True)
class Span:
    """A region of source text: 1-based line and column, end exclusive."""

    line: int
    column: int
    end_line: int
    end_column: int

    @classmethod
    def point(cls, line: int, column: int) -> "Span":
        return cls(line, column, line, column + 1)


@dataclass(frozen=True)
class Diagnostic:
    code: str
    message: str
    span: Span | None
    hint: str | None = None

    @property
    def severity(self) -> str:
        return "warning" if self.code.startswith("W") else "error"

    def render(self, source: str | None, filename: str = "<input>") -> str:
        """Render as ``file:line:col: error[CODE]: message`` plus the line and a caret."""
        if self.span is None:
            out = [f"{filename}: {self.severity}[{self.code}]: {self.message}"]
        else:
            s = self.span
            out = [f"{filename}:{s.line}:{s.column}: {self.severity}[{self.code}]: {self.message}"]
            # lines end at '\n' only, as the parser counts them (str.splitlines also splits at
            # '\f', '\x1c', '\u2028', ...); unprintable characters are not sent to the terminal
            lines = (source or "").split("\n")
            if 1 <= s.line <= len(lines):
                text = "".join(ch if ch.isprintable() else "\ufffd"
                               for ch in lines[s.line - 1].rstrip("\r").expandtabs(1))
                col = s.column
                end = s.end_column if s.end_line == s.line else len(text) + 1
                end = max(col + 1, min(end, len(text) + 1))
                if len(text) > _MAX_SHOWN:  # show a window around the caret
                    start = max(0, min(col - 1 - 20, len(text) - _MAX_SHOWN))
                    text = text[start:start + _MAX_SHOWN]
                    col, end = col - start, min(end - start, _MAX_SHOWN + 1)
                gutter = f"{s.line:>5} | "
                out.append(gutter + text)
                # pad by the width the terminal gives the text before the caret (a CJK
                # character takes two cells, a combining accent none), not by its length
                pad, width = _cells(text[:col - 1]), max(1, _cells(text[col - 1:end - 1]))
                out.append(" " * (len(gutter) - 2) + "| " + " " * pad + "^" * width)
        if self.hint:
            out.append(f"      = hint: {self.hint}")
        return "\n".join(out)

    def to_json(self, filename: str) -> dict:
        d = {"file": filename, "code": self.code, "severity": self.severity, "message": self.message}
        if self.span is not None:
            d.update(line=self.span.line, column=self.span.column,
                     end_line=self.span.end_line, end_column=self.span.end_column)
        if self.hint:
            d["hint"] = self.hint
        return d


@dataclass
class CompileError(Exception):
    """Raised when a model has errors; carries every diagnostic found."""

    diagnostics: list[Diagnostic]
    source: str | None = None
    filename: str = "<input>"
    warnings: list[Diagnostic] = field(default_factory=list)

    def __post_init__(self):
        super().__init__(self.render())

    def render(self) -> str:
        return "\n".join(d.render(self.source, self.filename) for d in self.diagnostics)

    def __str__(self) -> str:
        return self.render()


def did_you_mean(name: str, candidates) -> str | None:
    """A hint naming the closest candidate, if any is close enough."""
    match = difflib.get_close_matches(name, sorted(set(candidates)), n=1, cutoff=0.6)
    return f"did you mean '{match[0]}'?" if match else None
