"""What ``pip install driftline`` (the bare SDK) costs a model server: disk, import time, dependencies.

Builds the driftline wheel from this tree (a copy in a temporary directory: the tree stays clean),
installs it with the pinned versions of ``constraints.txt`` into a fresh virtual environment
(``python -m venv --without-pip``; this interpreter's pip installs into it, from the pip cache or PyPI), and
measures:

- ``installed_mb``: the size of the environment's site-packages (pip, setuptools and wheel excluded);
- ``import_ms``: the median over ``--runs`` fresh processes of the time ``from serving_shim import Monitor``
  takes (timed inside the process, so the interpreter's own start is not counted);
- ``dependencies``: the distributions installed besides driftline and pip's tooling.

    python -m bench.sdk_footprint [--runs 7] [--keep DIR]

Targets: installed_mb <= 30, import_ms <= 150. Details go to stderr; the last (only) stdout line is
``sdk_footprint installed_mb=… import_ms=… dependencies=…``. ``tests/integration/test_sdk_fresh_venv.py``
builds its environment with :func:`make_sdk_venv`.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
TARGETS = {"installed_mb": 30.0, "import_ms": 150.0}
#: pip's own tooling: not the SDK's footprint
TOOLING = frozenset({"pip", "setuptools", "wheel", "_distutils_hack", "distutils-precedence.pth", "pkg_resources"})
_PACKAGES = ("serving_shim", "collector", "detectors", "slo_engine", "dashboard", "driftline")
_IMPORT = ("import time\nt = time.perf_counter()\nfrom serving_shim import Monitor\n"
           "print((time.perf_counter() - t) * 1000)")


def _run(cmd: list[str], **kw: object) -> str:
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=900, **kw)  # type: ignore[call-overload]
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd[:6]))} ... failed ({out.returncode}):\n{out.stderr[-3000:]}")
    return str(out.stdout)


def build_wheel(dest: pathlib.Path) -> pathlib.Path:
    """The driftline wheel of this tree, built from a copy (no build/ or egg-info left in the tree)."""
    src = dest / "src"
    src.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for pkg in _PACKAGES:
        shutil.copytree(ROOT / pkg, src / pkg, ignore=ignore)
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dest / "dist"),
          str(src)])
    (wheel,) = (dest / "dist").glob("driftline-*.whl")
    return wheel


def make_sdk_venv(dest: pathlib.Path) -> pathlib.Path:
    """A fresh virtual environment in ``dest`` holding the bare SDK (``pip install driftline``) at the
    versions of constraints.txt; returns its Python."""
    wheel = build_wheel(dest / "build")
    venv = dest / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    python = venv / "bin" / "python"
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--disable-pip-version-check",
          "-c", str(ROOT / "constraints.txt"), str(wheel)])
    return python


def _site_packages(python: pathlib.Path) -> pathlib.Path:
    return pathlib.Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).strip())


def _is_tooling(entry: pathlib.Path) -> bool:
    name = entry.name.split("-")[0].lower() if entry.name.endswith(".dist-info") else entry.name.lower()
    return name in TOOLING


def installed_mb(python: pathlib.Path) -> float:
    total = 0
    for entry in _site_packages(python).iterdir():
        if _is_tooling(entry):
            continue
        files = [entry] if entry.is_file() else [p for p in entry.rglob("*") if p.is_file() and not p.is_symlink()]
        total += sum(p.stat().st_size for p in files)
    return total / 1e6


def dependencies(python: pathlib.Path) -> list[str]:
    code = ("import importlib.metadata as md, json\n"
            "print(json.dumps(sorted({d.metadata['Name'].lower().replace('_', '-') for d in md.distributions()})))")
    names = json.loads(_run([str(python), "-I", "-c", code]))
    return [n for n in names if n != "driftline" and n not in TOOLING]


def import_ms(python: pathlib.Path, runs: int) -> list[float]:
    """``from serving_shim import Monitor`` in ``runs`` fresh processes (isolated: the installed copy, not
    this tree), after one warm-up run that writes the bytecode caches."""
    cwd = python.parent.parent
    _run([str(python), "-I", "-c", _IMPORT], cwd=cwd)
    return [float(_run([str(python), "-I", "-c", _IMPORT], cwd=cwd)) for _ in range(runs)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=7, help="fresh-process imports to take the median of")
    ap.add_argument("--keep", type=pathlib.Path, default=None, help="build the environment here and keep it")
    a = ap.parse_args(argv)
    tmp = a.keep or pathlib.Path(tempfile.mkdtemp(prefix="driftline-sdk-"))
    try:
        python = make_sdk_venv(tmp)
        mb = installed_mb(python)
        deps = dependencies(python)
        times = import_ms(python, a.runs)
        baseline = import_ms_of(python, "import logging, typing, hashlib, threading, dataclasses", a.runs)
    finally:
        if a.keep is None:
            shutil.rmtree(tmp, ignore_errors=True)
    ms = statistics.median(times)
    print(f"dependencies: {', '.join(deps)}", file=sys.stderr)
    print(f"import_ms runs: {', '.join(f'{t:.1f}' for t in times)}; the stdlib modules the SDK needs alone "
          f"(logging, typing, hashlib, threading, dataclasses): median {statistics.median(baseline):.1f} ms "
          f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)", file=sys.stderr)
    for name, value in (("installed_mb", mb), ("import_ms", ms)):
        verdict = "ok" if value <= TARGETS[name] else "OVER"
        print(f"{name}: {value:.1f} (target <= {TARGETS[name]:g}: {verdict})", file=sys.stderr)
    print(f"sdk_footprint installed_mb={mb:.1f} import_ms={ms:.1f} dependencies={len(deps)}")
    return 0


def import_ms_of(python: pathlib.Path, statement: str, runs: int) -> list[float]:
    code = f"import time\nt = time.perf_counter()\n{statement}\nprint((time.perf_counter() - t) * 1000)"
    cwd = python.parent.parent
    return [float(_run([str(python), "-I", "-c", code], cwd=cwd)) for _ in range(runs)]


if __name__ == "__main__":
    sys.exit(main())
