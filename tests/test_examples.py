"""The example scripts stay in step with the library.

The model that ``examples/custom_model.py`` writes must compile (checked on every run:
the language may not drift away from it), and the script itself must run to the end and
learn (marked slow: a few minutes of training).
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys

import pytest

import eventax_dsl

EXAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "examples")
CUSTOM = os.path.join(EXAMPLES, "custom_model.py")


def _literal(path: str, name: str) -> str:
    """The string literal assigned to ``name`` at the top level of a script."""
    tree = ast.parse(open(path, encoding="utf-8").read())
    for node in tree.body:
        if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == [name]:
            return ast.literal_eval(node.value)
    raise AssertionError(f"{path} assigns no {name}")


def test_custom_model_example_compiles():
    compiled = eventax_dsl.compile_source(_literal(CUSTOM, "SOURCE"), "custom_model.py:SOURCE")
    assert compiled.warnings == ()
    ir = compiled.ir
    assert [s.name for s in ir.states] == ["v", "i_exc", "i_inh"]
    assert [c.name for c in ir.channels] == ["w_exc", "w_inh"]
    assert ir.refractory is not None and ir.keep_input


@pytest.mark.slow
def test_custom_model_example_runs_and_learns(tmp_path):
    proc = subprocess.run([sys.executable, CUSTOM], cwd=tmp_path, capture_output=True, text=True,
                          timeout=1200)
    assert proc.returncode == 0, proc.stderr[-4000:]
    acc = [float(a) for a in re.findall(r"test accuracy (?:before training: )?([0-9.]+)",
                                        proc.stdout)]
    assert len(acc) == 4, proc.stdout
    assert acc[-1] > acc[0] + 0.2, proc.stdout  # chance is 1/3: it learned something
