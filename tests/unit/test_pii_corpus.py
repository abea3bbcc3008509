"""The leak counter of the PII tests finds values however they are written, and not by coincidence."""

from tests.pii_corpus import Record, count_leaks


def _rec(phone: str, card: str = "4111 1111 1111 1111") -> Record:
    return Record(rid="r", features={}, slices={}, prediction={}, label="",
                  pii={"phone": [phone], "card": [card]})


def test_a_value_is_found_as_written_and_with_other_separators() -> None:
    rec = _rec("+1-853-406-6157x397")
    assert count_leaks("call +1-853-406-6157x397 now", [rec])["phone"] == ["+1-853-406-6157x397"]
    assert count_leaks("call (853) 406.6157 now", [rec])["phone"] == ["+1-853-406-6157x397"]
    assert count_leaks("card 4111-1111-1111-1111", [rec])["card"] == ["4111 1111 1111 1111"]


def test_a_core_inside_a_longer_number_is_not_a_leak() -> None:
    rec = _rec("+1-853-406-6157")
    # the phone's last eight digits inside a timestamp's digits and a counter: not the phone
    assert "34066157" in "9834066157123"
    text = '{"ts": "2026-12-03 16:43:53.340661", "offset": 9834066157123}'
    assert all(v == [] for v in count_leaks(text, [rec]).values())
    assert count_leaks('{"id": "18534066157"}', [rec])["phone"] == ["+1-853-406-6157"]
    assert count_leaks("redacted <PHONE> and 406-6157", [rec])["phone"] == []
