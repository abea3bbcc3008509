"""`pip install driftline` is the SDK alone: what a model server imports stays inside the base requirements.

The platform (chDB, the API, detectors, the dashboard) is the ``server`` extra. This checks both the
declaration (pyproject) and the behaviour: a process that uses the SDK loads only distributions reachable
from the base requirements.
"""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
import tomllib

ROOT = pathlib.Path(__file__).resolve().parents[3]
HEAVY = {"chdb", "clickhouse-driver", "streamlit", "evidently", "fastapi", "uvicorn", "scipy", "pandas", "pyarrow",
         "plotly"}

_PROBE = r"""
import importlib.metadata as md, json, re, sys
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from serving_shim import HttpSink, InMemorySink, KafkaSink, Monitor, Redaction

sink = InMemorySink()
m = Monitor(model="churn", version="v1", sink=sink, sample_rate=1.0, redaction=Redaction())
for i in range(20):
    m.log(f"r{i}", {"age": i, "email": f"user{i}@example.com", "plan": "pro"}, {"label": "stay", "score": 0.5})
m.flush(timeout=30)
m.shutdown()
assert sink.events("prediction"), "the SDK exported nothing"
HttpSink("http://127.0.0.1:9")

def closure(names):
    # every distribution the requirements reach, extras of theirs included: a package's optional import
    # (requests trying PySocks) loads a distribution when present without it being a requirement
    seen, todo = set(), list(names)
    while todo:
        req = Requirement(todo.pop())
        if req.marker is not None:
            extra = re.search(r"extra\s*==\s*['\"]([^'\"]+)", str(req.marker))
            if not req.marker.evaluate({"extra": extra.group(1) if extra else ""}):
                continue
        name = canonicalize_name(req.name)
        if name not in seen:
            seen.add(name)
            try:
                todo.extend(md.requires(name) or [])
            except md.PackageNotFoundError:
                pass
    return seen

base = json.loads(sys.argv[1])
allowed = closure(base)
dists = md.packages_distributions()
loaded = set()
for mod in list(sys.modules):
    top = mod.split(".")[0]
    for d in dists.get(top, []):
        loaded.add(canonicalize_name(d))
print(json.dumps({"allowed": sorted(allowed), "loaded": sorted(loaded)}))
"""


def _base_requirements() -> list[str]:
    return list(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"])


def test_the_base_install_declares_no_platform_package() -> None:
    from packaging.requirements import Requirement

    names = {Requirement(r).name.lower() for r in _base_requirements()}
    assert not names & HEAVY, f"platform packages in the SDK's requirements: {sorted(names & HEAVY)}"
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    server = {Requirement(r).name.lower() for r in extras["server"]}
    assert HEAVY <= server
    assert "driftline[server]" in extras["dev"]


def test_a_model_server_using_the_sdk_loads_only_the_base_requirements() -> None:
    out = subprocess.run([sys.executable, "-c", _PROBE, json.dumps(_base_requirements())], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    outside = sorted(set(got["loaded"]) - set(got["allowed"]) - {"driftline"})
    assert not outside, f"the SDK loaded distributions outside its requirements: {outside}"
    assert not set(got["loaded"]) & HEAVY


def test_a_platform_command_on_an_sdk_only_install_names_the_extra_to_install(tmp_path: pathlib.Path) -> None:
    blocked = "import sys\nfor m in ('uvicorn', 'chdb', 'fastapi'):\n    sys.modules[m] = None\n"
    code = blocked + f"from driftline.cli import main\nsys.exit(main(['serve', '--store', {str(tmp_path / 's')!r}]))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stderr[-2000:]
    assert "pip install 'driftline[server]'" in out.stderr and "Traceback" not in out.stderr
