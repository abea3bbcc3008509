"""Subjects on a real store: stored only as salted hashes in their own columns; deletion removes every row of a
subject from predictions, labels and dead letters (merges forced, a second query finds none), reports what
went, and is audited without the raw id; export returns what is stored."""

from __future__ import annotations

import argparse
import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from collector import audit
from collector.sql import ident, sql
from collector.subjects import SUBJECT_COLUMNS, SubjectHasher, Subjects
from driftline.config import Settings
from driftline.governance import _subjects
from driftline.server import create_app
from tests import factories as f

SALT = "subject-salt-for-tests-0123456789"
ALICE, BOB = "alice@example.com", "cust-00042"
H = SubjectHasher(SALT.encode())


@pytest.fixture
def app(store):  # type: ignore[no-untyped-def]
    return create_app(Settings(scheduler=False, redaction_salt=SALT), store=store)


def _everything(store: Any) -> str:
    """Every stored value of the three tables, as text (to look for a raw id anywhere)."""
    out = []
    for t in SUBJECT_COLUMNS:
        out.append(json.dumps(store.rows(sql("SELECT * FROM {db}.%(t)s", t=ident(t))), default=str))
    return "\n".join(out)


def _rows_of(store: Any, h: str) -> dict[str, int]:
    return {t: int(store.scalar(sql("SELECT count() FROM {db}.%(t)s WHERE %(cond)s", t=ident(t),
                                    cond=sql("has(subject_hashes, %(h)s)" if arr else "subject_hash = %(h)s", h=h))))
            for t, (_, arr) in SUBJECT_COLUMNS.items()}


def _seed(c: TestClient, headers: dict[str, str]) -> dict[str, Any]:
    preds = [f.prediction(i, subject=ALICE if i % 3 == 0 else BOB) for i in range(30)]
    preds += [f.prediction(100 + i) for i in range(5)]                          # no subject
    r = c.post("/v1/predictions", json=preds, headers=headers).json()
    assert r["accepted"] == 35, r
    labels = [f.label(p["request_id"]) | {"subject": p["subject"]} for p in preds[:12]]
    assert c.post("/v1/labels", json=labels, headers=headers).json()["accepted"] == 12
    # rejected events of both subjects: dead letters (a bad score, a missing prediction)
    bad = [f.prediction(200, subject=ALICE, latency_ms=-5), f.prediction(201, subject=BOB, prediction={})]
    r = c.post("/v1/predictions", json=bad, headers=headers).json()
    assert r["accepted"] == 0 and len(r["rejected"]) == 2, r
    return {"alice_preds": 10, "alice_labels": 4, "bob_preds": 20, "bob_labels": 8}


def test_subjects_are_stored_only_as_salted_hashes_in_their_own_columns(app, store) -> None:  # type: ignore[no-untyped-def]
    h = {"X-API-Key": app.state.keys.create(scope="admin")}
    with TestClient(app) as c:
        n = _seed(c, h)
        # a hash made by the SDK with the same salt is stored as it came (not hashed again)
        sdk = f.prediction(300, subject=H(ALICE))
        assert c.post("/v1/predictions", json=[sdk], headers=h).json()["accepted"] == 1
    text = _everything(store)
    assert ALICE not in text and BOB not in text
    assert _rows_of(store, H(ALICE)) == {"predictions": n["alice_preds"] + 1, "labels": n["alice_labels"],
                                         "dead_letters_v2": 1}
    assert _rows_of(store, H(BOB)) == {"predictions": n["bob_preds"], "labels": n["bob_labels"], "dead_letters_v2": 1}
    assert H(ALICE).startswith("h:") and H(ALICE) != SubjectHasher(b"another-salt-0123456789")(ALICE)


def test_a_subject_id_with_slashes_is_reached_through_the_path(app, store) -> None:  # type: ignore[no-untyped-def]
    sub = "tenants/eu/users/42"
    h = {"X-API-Key": app.state.keys.create(scope="admin")}
    with TestClient(app) as c:
        assert c.post("/v1/predictions", json=[f.prediction(i, subject=sub) for i in range(3)],
                      headers=h).json()["accepted"] == 3
        quoted = "tenants%2Feu%2Fusers%2F42"          # as the CLI sends it (urllib.parse.quote(..., safe=""))
        assert c.get(f"/v1/subjects/{quoted}", headers=h).json()["rows"]["predictions"] == 3
        r = c.delete(f"/v1/subjects/{sub}", headers=h)  # or plain
        assert r.status_code == 200 and r.json()["removed"]["predictions"] == 3, r.text
    assert _rows_of(store, H(sub))["predictions"] == 0


def test_deleting_a_subject_removes_every_row_of_it_and_reports_them(app, store) -> None:  # type: ignore[no-untyped-def]
    admin = app.state.keys.create(scope="admin")
    h = {"X-API-Key": admin}
    with TestClient(app) as c:
        n = _seed(c, h)
        before_bob = _rows_of(store, H(BOB))
        exported = c.get(f"/v1/subjects/{ALICE}", headers=h).json()
        assert exported["rows"] == {"predictions": n["alice_preds"], "labels": n["alice_labels"], "dead_letters_v2": 1}
        assert {r["subject_hash"] for r in exported["tables"]["predictions"]} == {H(ALICE)}
        r = c.delete(f"/v1/subjects/{ALICE}", headers=h)
        assert r.status_code == 200, r.text
        report = r.json()
        assert report["removed"] == {"predictions": n["alice_preds"], "labels": n["alice_labels"], "dead_letters_v2": 1}
        assert report["total_removed"] == n["alice_preds"] + n["alice_labels"] + 1
        assert report["remaining"] == {t: 0 for t in SUBJECT_COLUMNS}
        # a second query, after forcing every merge, finds none of its rows in any table
        for t in SUBJECT_COLUMNS:
            store.execute(sql("OPTIMIZE TABLE {db}.%(t)s FINAL", t=ident(t)))
        assert _rows_of(store, H(ALICE)) == {t: 0 for t in SUBJECT_COLUMNS}
        again = c.get(f"/v1/subjects/{H(ALICE)}", params={"hashed": "true"}, headers=h).json()
        assert again["rows"] == {t: 0 for t in SUBJECT_COLUMNS}
        # the others are untouched
        assert _rows_of(store, H(BOB)) == before_bob
        assert store.scalar("SELECT count() FROM {db}.predictions FINAL WHERE subject_hash = ''") == 5
        # a second deletion finds nothing to remove
        assert c.delete(f"/v1/subjects/{ALICE}", headers=h).json()["total_removed"] == 0
    entries = audit.query(store, action="subject.")
    deletions = [e for e in entries if e["action"] == "subject.delete"]
    assert len(deletions) == 2 and deletions[-1]["actor"] == f"key:{admin.split('_')[1]}"
    assert deletions[-1]["target"] == H(ALICE) and deletions[-1]["after"]["removed"]["predictions"] == n["alice_preds"]
    assert any(e["action"] == "subject.export" for e in entries)
    assert ALICE not in json.dumps(entries)


def test_the_cli_deletes_by_raw_id_or_hash(store, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    from tests.detector_data import T0, insert_labels, insert_predictions

    monkeypatch.setenv("DRIFTLINE_REDACTION_SALT", SALT)
    rids = insert_predictions(store, start=T0, seconds=60, features=[{"x": 1.0}] * 40,
                              subjects=[H(ALICE) if i % 2 else H(BOB) for i in range(40)])
    insert_labels(store, rids, values=[1.0] * 40, subjects=[H(ALICE) if i % 2 else H(BOB) for i in range(40)])

    def args(subject: str, hashed: bool) -> argparse.Namespace:
        return argparse.Namespace(subject=subject, hash=hashed, api=None, store=None)

    assert _subjects(args(ALICE, False), "delete", lambda _: store) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["removed"] == {"predictions": 20, "labels": 20, "dead_letters_v2": 0}
    assert _subjects(args(H(BOB), True), "export", lambda _: store) == 0
    assert json.loads(capsys.readouterr().out)["rows"]["predictions"] == 20
    assert _subjects(args(H(BOB), True), "delete", lambda _: store) == 0
    assert json.loads(capsys.readouterr().out)["total_removed"] == 40
    assert store.scalar("SELECT count() FROM {db}.predictions") == 0
    (e, _) = audit.query(store, action="subject.delete")
    assert e["actor"].startswith("cli:")
    with pytest.raises(ValueError, match="subject: a hash is"):
        Subjects(store, H).delete("not-a-hash", hashed=True, actor="cli:x")


def test_without_a_salt_raw_subjects_are_refused_and_never_stored(store) -> None:  # type: ignore[no-untyped-def]
    app = create_app(Settings(scheduler=False), store=store)
    h = {"X-API-Key": app.state.keys.create(scope="admin")}
    with TestClient(app) as c:
        good = f.prediction(1)
        raw = f.prediction(2, subject=ALICE)
        hashed = f.prediction(3, subject=H(BOB))
        r = c.post("/v1/predictions", json=[good, raw, hashed], headers=h).json()
        assert r["accepted"] == 2 and [(x["index"], x["field"]) for x in r["rejected"]] == [(1, "subject")]
        assert "salt" in r["rejected"][0]["reason"]
        # the API cannot hash a raw id without the salt; a hash still works
        assert c.delete(f"/v1/subjects/{ALICE}", headers=h).status_code == 422
        assert c.delete(f"/v1/subjects/{H(BOB)}", params={"hashed": "true"}, headers=h).json()["removed"][
            "predictions"] == 1
        # subjects are for unscoped admins only
        scoped = {"X-API-Key": app.state.keys.create(scope="admin", models=("m1",))}
        assert c.get(f"/v1/subjects/{H(BOB)}", params={"hashed": "true"}, headers=scoped).status_code == 403
    assert ALICE not in _everything(store)
