"""`pip install driftline` is the SDK alone: what a model server imports stays inside the base requirements.

The platform (chDB, the API, detectors, the dashboard) is the ``server`` extra. This checks both the
declaration (pyproject) and the behaviour: a process that uses the SDK loads only distributions reachable
from the base requirements.
"""

from __future__ import annotations

import json
import pathlib
import re
import subprocess
import sys
import tomllib

ROOT = pathlib.Path(__file__).resolve().parents[3]
HEAVY = {"chdb", "clickhouse-driver", "streamlit", "evidently", "fastapi", "uvicorn", "scipy", "pandas", "pyarrow",
         "plotly"}
#: the SDK's optional features: the ``kafka`` and ``redaction`` extras
OPTIONAL = {"kafka-python", "lz4", "crc32c", "presidio-analyzer"}

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


def _closure_of_extra(extras: dict[str, list[str]], name: str) -> set[str]:
    """The distributions an extra names, its references to other extras of driftline followed."""
    from packaging.requirements import Requirement

    out: set[str] = set()
    for r in extras[name]:
        req = Requirement(r)
        if req.name == "driftline":
            for e in req.extras:
                out |= _closure_of_extra(extras, e)
        else:
            out.add(req.name.lower())
    return out


def test_the_base_install_declares_no_platform_package() -> None:
    from packaging.requirements import Requirement

    names = {Requirement(r).name.lower() for r in _base_requirements()}
    assert not names & (HEAVY | OPTIONAL), f"optional packages in the SDK's requirements: {names & (HEAVY | OPTIONAL)}"
    assert len(names) <= 5, names
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert {"kafka", "redaction", "server", "dashboard", "reports", "all", "dev"} <= set(extras)
    assert {"kafka-python", "lz4", "crc32c"} <= _closure_of_extra(extras, "kafka")
    assert _closure_of_extra(extras, "redaction") == {"presidio-analyzer"}
    assert {"streamlit", "plotly"} <= _closure_of_extra(extras, "dashboard")
    assert "evidently" in _closure_of_extra(extras, "reports")
    assert HEAVY | OPTIONAL <= _closure_of_extra(extras, "server")  # the platform runs everything
    assert _closure_of_extra(extras, "all") >= _closure_of_extra(extras, "server")
    assert _closure_of_extra(extras, "dev") >= _closure_of_extra(extras, "all")  # setup.sh installs .[dev]


def test_a_model_server_using_the_sdk_loads_only_the_base_requirements() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    sdk = _base_requirements() + extras["kafka"] + extras["redaction"]  # the SDK with its own extras installed
    out = subprocess.run([sys.executable, "-c", _PROBE, json.dumps(sdk)], cwd=ROOT,
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


#: a process without the optional extras (their modules made unimportable, as in a bare install)
_BARE = ("import sys\n"
         "for m in ('kafka', 'lz4', 'presidio_analyzer', 'spacy', 'numpy', 'orjson', 'pandas', 'chdb'):\n"
         "    sys.modules[m] = None\n")


def test_importing_the_sdk_loads_nothing_heavy() -> None:
    code = ("import sys\nimport serving_shim\nfrom serving_shim import Monitor, Redaction, HttpSink\n"
            "print(sorted({m.split('.')[0] for m in sys.modules}))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    loaded = set(json.loads(out.stdout.strip().replace("'", '"')))
    # the models (pydantic), the HTTP client and the recognizers load when first used, not at import
    assert not loaded & {"pydantic", "pydantic_core", "httpx", "presidio_analyzer", "spacy", "numpy", "kafka",
                         "msgspec", "prometheus_client", "collector", "driftline"}, sorted(loaded)


def test_without_the_redaction_extra_strings_that_could_hold_pii_leave_as_tokens() -> None:
    code = _BARE + """
import json, logging
logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
from serving_shim import InMemorySink, Monitor, Redaction
sink = InMemorySink()
m = Monitor(model="m", version="v1", sink=sink, redaction=Redaction(categories={"plan": {"pro"}}))
m.log("r1", {"email": "jane.doe@example.com", "phone": "call +1 415 555 0134", "plan": "pro", "tier": "gold",
             "note": "card 4111 1111 1111 1111", "age": 41}, {"label": "stay", "score": 0.5},
      slices={"ip": "10.1.2.3", "region": "eu"})
m.log_label("r1", label="jane@example.com")
m.flush(30)
m2 = Monitor(model="m2", version="v1", sink=sink, redaction=Redaction(salt=b"0123456789abcdef0123"))
m2.log("r2", {"email": "jane.doe@example.com"}, 1.0)
m2.flush(30)
m.shutdown(); m2.shutdown()
p1, p2 = [e.model_dump(mode="json") for e in sink.events("prediction")]
(lab,) = [e.model_dump(mode="json") for e in sink.events("label")]
print(json.dumps({"p1": p1, "p2": p2, "label": lab}))
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    f, sl = got["p1"]["features"], got["p1"]["slices"]
    for value in (f["email"], f["phone"], f["note"], sl["ip"], got["label"]["label"]):
        assert re.fullmatch(r"h:[0-9a-f]{32}", value), value
    assert "jane" not in out.stdout and "4111" not in out.stdout and "555" not in out.stdout
    # what no recognizer could match passes as it would with Presidio; numbers pass
    passed = (f["plan"], f["tier"], f["age"], sl["region"], got["p1"]["prediction"]["label"])
    assert passed == ("pro", "gold", 41, "eu", "stay")
    assert got["p2"]["features"]["email"] != f["email"]  # the salt given, or a random one per process
    warnings = [ln for ln in out.stderr.splitlines() if "driftline[redaction]" in ln]
    assert len(warnings) == 1, out.stderr[-2000:]


def test_features_whose_extra_is_missing_name_it() -> None:
    code = _BARE + """
import json
from serving_shim import KafkaSink, Monitor, InMemorySink, Redaction
from serving_shim.transport import KafkaTransport
errors = []
for make in (lambda: KafkaSink("127.0.0.1:9092"), lambda: KafkaTransport("127.0.0.1:9092"),
             lambda: Monitor(model="m", version="v", sink=InMemorySink(),
                             redaction=Redaction(ner_model="en_core_web_sm")),
             lambda: Monitor(model="m", version="v", sink=InMemorySink(),
                             redaction=Redaction(phone_regions=("US",)))):
    try:
        make()
        errors.append("no error")
    except ImportError as exc:
        errors.append(str(exc))
print(json.dumps(errors))
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    kafka1, kafka2, ner, regions = json.loads(out.stdout.strip().splitlines()[-1])
    assert "pip install 'driftline[kafka]'" in kafka1 and "pip install 'driftline[kafka]'" in kafka2
    assert "pip install 'driftline[redaction]'" in ner and "pip install 'driftline[redaction]'" in regions
