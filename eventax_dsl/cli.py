"""Command-line interface: ``eventax-compile``.

Exit status: 0 success, 1 the model has errors, 2 the command line is wrong.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import sys
import tempfile
from pathlib import Path

from .compiler import compile_source, read_source
from .explain import explain, explain_json
from .language.diagnostics import CompileError
from .version import __version__


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="eventax-compile",
        description="Compile .neuron model files to JAX modules implementing the eventax model contract.",
        epilog="With one input and no -o, the generated module is printed to standard output.",
    )
    ap.add_argument("inputs", nargs="+", metavar="model.neuron", help="model files to compile")
    ap.add_argument("-o", "--output", metavar="PATH",
                    help="output file (one input) or directory (several inputs; created if missing)")
    ap.add_argument("--check", action="store_true", help="only check the models; write nothing")
    ap.add_argument("--explain", action="store_true",
                    help="print states, parameters, simplified equations, rules and linear blocks")
    ap.add_argument("--json", action="store_true", help="print diagnostics (and --explain) as JSON")
    ap.add_argument("--version", action="version", version=f"eventax-compile {__version__}")
    return ap


def _write_atomic(path: Path, text: str):
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError:  # some part of the directory path is a file
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(path.parent)) from None
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        # mkstemp makes the file private (0600): give it the mode the file it replaces had,
        # or the one a new file gets under the umask
        try:
            mode = path.stat().st_mode & 0o7777
        except FileNotFoundError:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _same_file(target: Path, source: str) -> bool:
    """Whether writing ``target`` would replace the input ``source`` (the same file, also
    through another path or a link)."""
    try:
        return os.path.samefile(target, source)
    except OSError:  # the target does not exist (yet), or the source cannot be found
        return False


def compile_main(argv=None) -> int:
    ap = _parser()
    args = ap.parse_args(argv)
    several = len(args.inputs) > 1
    writing = not args.check and not args.explain
    if several and writing and not args.output:
        ap.error("several inputs need -o DIRECTORY (or --check / --explain)")
    if args.output is not None and not args.output:
        ap.error("-o needs a file or directory name")
    if args.output and not writing:
        ap.error("-o cannot be combined with --check or --explain")
    if args.output and several and Path(args.output).is_file():
        ap.error(f"-o {args.output}: with several inputs, -o must be a directory")
    # 'outdir/' names a directory even before it exists
    to_dir = bool(args.output) and (several or args.output.endswith(("/", os.sep))
                                    or Path(args.output).is_dir())
    if writing and to_dir:
        first = {}
        for name in args.inputs:
            other = first.setdefault(Path(name).stem, name)
            if other != name:
                ap.error(f"{other} and {name} would both be written to "
                         f"{Path(args.output) / (Path(name).stem + '.py')}")

    status = 0
    report = []
    for name in args.inputs:
        try:
            # read once: a pipe gives its text only once, and a file may change meanwhile
            data = read_source(name)
            compiled = compile_source(data, name)
        except CompileError as err:
            status = 1
            if args.json:
                report.append({"file": name, "ok": False,
                               "diagnostics": [d.to_json(name) for d in err.diagnostics + err.warnings]})
            else:
                print(err.render(), file=sys.stderr)
                for w in err.warnings:
                    print(w.render(err.source, name), file=sys.stderr)
            continue
        entry = {"file": name, "ok": True, "diagnostics": [w.to_json(name) for w in compiled.warnings]}
        if not args.json:
            for w in compiled.warnings:
                print(w.render(compiled.text, name), file=sys.stderr)
        if args.explain:
            if args.json:
                entry["model"] = explain_json(compiled.ir)
            else:
                print(explain(compiled.ir))
        if writing:
            if args.output:
                out = Path(args.output)
                target = out / (Path(name).stem + ".py") if to_dir else out
                try:
                    if _same_file(target, name):
                        raise OSError(errno.EEXIST, "it is the input file itself; refusing to "
                                                    "overwrite the model with the generated module")
                    _write_atomic(target, compiled.source)
                except OSError as exc:
                    where = (f" ({exc.filename})" if exc.filename and str(exc.filename) != str(target)
                             else "")
                    message = f"cannot write {target}: {exc.strerror or exc}{where}"
                    status = 1
                    if args.json:
                        entry["ok"] = False
                        entry["error"] = message
                        report.append(entry)
                    else:
                        print(f"eventax-compile: {message}", file=sys.stderr)
                    continue
                entry["output"] = str(target)
            elif args.json:  # stdout carries the JSON report; the module goes inside it
                entry["python"] = compiled.source
            else:
                sys.stdout.write(compiled.source)
        report.append(entry)
    if args.json:
        print(json.dumps(report, indent=2))
    return status


def main():  # pragma: no cover - console entry point
    try:
        sys.exit(compile_main())
    except KeyboardInterrupt:
        sys.exit(130)
    except BrokenPipeError:  # e.g. '| head' closed stdout: not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
    except Exception as exc:  # a compiler bug: say so plainly, no traceback
        print(f"eventax-compile: internal error ({type(exc).__name__}: {exc}); please report it "
              "with the input file", file=sys.stderr)
        sys.exit(3)
