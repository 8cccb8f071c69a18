"""Per-model compile time of the library: parse + check + generate + exec.

Goal: < 0.5 s per model. Each model is compiled in a fresh subprocess, so no
SymPy cache from another library model helps. The one-time cost of a process
(importing JAX/SymPy, loading the grammar, SymPy's lazy imports on first use)
is paid first by compiling a two-line model and reported separately as
"startup"; "again" compiles the same model a second time in the process.

    python benchmarks/compile_time.py [models/*.neuron]
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_CHILD = """
import json, sys, time
t0 = time.perf_counter()
import eventax_dsl
from eventax_dsl.compiler import class_from_source, read_source
from eventax_dsl.language.parser import parse
from eventax_dsl.checker import check_with_warnings
from eventax_dsl.codegen import generate
eventax_dsl.compile_source("neuron Warm\\nstate:\\n    x = 1\\nequations:\\n    x' = -x + 1\\n")
t_start = time.perf_counter() - t0
data = read_source(sys.argv[1]).decode()
t = time.perf_counter(); m = parse(data, sys.argv[1]); t_parse = time.perf_counter() - t
t = time.perf_counter(); ir, _ = check_with_warnings(m, data, sys.argv[1]); t_check = time.perf_counter() - t
t = time.perf_counter(); src = generate(ir); t_gen = time.perf_counter() - t
t = time.perf_counter(); class_from_source(src, "bench"); t_exec = time.perf_counter() - t
t = time.perf_counter(); eventax_dsl.compile_source(data, sys.argv[1]); t_warm = time.perf_counter() - t
print(json.dumps(dict(startup=t_start, parse=t_parse, check=t_check, generate=t_gen, exec=t_exec, warm=t_warm)))
"""


def main(paths):
    # absolute: the child runs in the repository root, not in the caller's directory
    paths = [str(Path(p).resolve()) for p in paths] or sorted(
        str(p) for p in (ROOT / "models").glob("*.neuron"))
    print(f"{'model':<16}{'startup':>9}{'parse':>8}{'check':>8}{'codegen':>9}{'exec':>8}{'total':>8}{'again':>8}"
          "  (seconds; total = parse+check+codegen+exec)")
    worst = 0.0
    for path in paths:
        out = subprocess.run([sys.executable, "-c", _CHILD, path], capture_output=True, text=True, cwd=ROOT)
        if out.returncode != 0:
            print(f"{Path(path).stem:<16} FAILED\n{out.stderr}")
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        total = r["parse"] + r["check"] + r["generate"] + r["exec"]
        worst = max(worst, total)
        print(f"{Path(path).stem:<16}{r['startup']:9.3f}{r['parse']:8.3f}{r['check']:8.3f}{r['generate']:9.3f}{r['exec']:8.3f}"
              f"{total:8.3f}{r['warm']:8.3f}")
    print(f"slowest model: {worst:.3f} s (goal < 0.5 s)")


if __name__ == "__main__":
    main(sys.argv[1:])
