"""`pip install driftline` into a fresh virtual environment, then a Monitor in it against a live server.

The environment is built by ``bench.sdk_footprint.make_sdk_venv`` (the wheel of this tree, the versions of
constraints.txt, no extras): it holds no Presidio, so the SDK's own fallback must keep PII from leaving. The
server runs with its own redaction off, so whatever arrives is what the SDK sent.
"""

from __future__ import annotations

import json
import pathlib
import re
import subprocess

import httpx

from bench.sdk_footprint import make_sdk_venv
from driftline.config import Settings
from driftline.server import create_app
from tests.servers import running

EMAILS = ["jane.doe@example.com", "li.wei@mail.example.org", "o'brien@example.co.uk"]
PHONES = ["+1 (415) 555-0134", "020 7946 0958", "+49 30 901820"]

_SCRIPT = r"""
import importlib.util, json, logging, sys
logging.basicConfig(level=logging.WARNING)
from serving_shim import HttpSink, Monitor

emails, phones = json.loads(sys.argv[2]), json.loads(sys.argv[3])
m = Monitor(model="fresh-venv", version="v1", sink=HttpSink(sys.argv[1]), window_s=60)
for i, (email, phone) in enumerate(zip(emails, phones)):
    m.log(f"r{i}", {"age": 30 + i, "plan": "pro", "contact": f"write to {email}", "phone": phone},
          {"label": "stay", "score": 0.25}, latency_ms=4.0 + i, slices={"region": "eu"})
m.log("r-err", {"age": 1, "plan": "free"}, None, status="error", error_type="timeout")
ok = m.flush(30)
snap = m.metrics()
m.shutdown()
print(json.dumps({"flushed": ok, "exported": snap.exported, "dropped": {k: v for k, v in snap.dropped.items() if v},
                  "presidio": importlib.util.find_spec("presidio_analyzer") is not None,
                  "pydantic": "pydantic" in sys.modules}))
"""


def test_the_bare_sdk_in_a_fresh_venv_delivers_to_a_live_server_without_pii(store, tmp_path: pathlib.Path) -> None:  # type: ignore[no-untyped-def]
    python = make_sdk_venv(tmp_path)
    settings = Settings(open_localhost=True, scheduler=False, redaction="off")
    with running(create_app(settings, store=store), log_level="warning") as url:
        out = subprocess.run([str(python), "-I", "-c", _SCRIPT, url, json.dumps(EMAILS), json.dumps(PHONES)],
                             cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr[-3000:]
        got = json.loads(out.stdout.strip().splitlines()[-1])
        api = "".join(httpx.get(f"{url}{path}", timeout=10).text
                      for path in ("/v1/models", "/v1/predictions?model=fresh-venv", "/v1/dead-letters"))
    assert got["flushed"] and not got["presidio"], got
    assert got["exported"] == {"prediction": 4, "metric_window": 1} and not got["dropped"], got
    assert [ln for ln in out.stderr.splitlines() if "pip install 'driftline[redaction]'" in ln], out.stderr[-2000:]

    rows = store.rows("SELECT * FROM {db}.predictions FINAL WHERE model = 'fresh-venv' ORDER BY request_id")
    assert [r["request_id"] for r in rows] == ["r-err", "r0", "r1", "r2"]
    windows = store.rows("SELECT * FROM {db}.metric_windows FINAL WHERE model = 'fresh-venv'")
    assert sum(w["requests"] for w in windows) == 4
    ok = [r for r in rows if r["request_id"] != "r-err"]
    text = json.dumps(rows, default=str) + json.dumps(windows, default=str) + api
    for pii in (*EMAILS, *PHONES, "415", "7946", "901820", "jane", "li.wei", "brien"):
        assert pii not in text, f"{pii!r} readable in what the server stored"
    # what could hold PII arrived as whole tokens; what could not arrived as sent
    blob = json.dumps(ok, default=str)
    assert len(set(re.findall(r"h:[0-9a-f]{32}", blob))) >= 2 * len(EMAILS)
    assert "pro" in blob and "stay" in blob and "eu" in blob
    assert "r2" in api  # the API answered with the predictions it read
