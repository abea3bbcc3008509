"""Redaction policies, Presidio on free text, caching and skips, and no network at any time."""

from __future__ import annotations

import hashlib
import hmac
import socket
import threading

import pytest

from serving_shim import Redaction
from serving_shim._internal.redaction import Redactor

SALT = b"test-salt-0123456789abcdef"


@pytest.fixture
def no_network(monkeypatch):  # type: ignore[no-untyped-def]
    """Any attempt to resolve a name or open a connection is refused, and recorded when it comes from the
    test's own thread (a worker an earlier test left retrying its sink is not this test's doing)."""
    attempts: list[object] = []
    me = threading.get_ident()

    def refuse(*args, **kwargs):  # type: ignore[no-untyped-def]
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
def test_free_text_entities_are_replaced(no_network, text: str, entity: str, raw: str) -> None:
    out = Redactor(Redaction()).apply({"t": text})["t"]
    assert raw not in out and f"<{entity}>" in out, out
    assert no_network == []


def test_email_domains_checked_offline(no_network) -> None:
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


def test_an_installed_ner_model_adds_names_offline(tmp_path, no_network) -> None:  # type: ignore[no-untyped-def]
    # a user-installed spaCy pipeline (here a tiny rule-based one saved to disk, no download)
    import spacy

    nlp = spacy.blank("en")
    nlp.add_pipe("entity_ruler").add_patterns([
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


def test_the_network_guard_sees_what_presidio_would_do_by_default(no_network) -> None:  # type: ignore[no-untyped-def]
    # tldextract's default (what Presidio's stock EmailRecognizer uses) tries to download the
    # public suffix list: the guard above records that, so the offline tests can fail.
    import tldextract

    tldextract.TLDExtract(cache_dir=None)("mail.example.co.uk")
    assert no_network
