"""Presidio recognizers the shim adds to Presidio's own: street addresses, phone numbers in every common
written form, and payment cards of every current IIN range.

Each is a Presidio ``PatternRecognizer`` (patterns, context words, and a ``validate_result`` that
rejects what cannot be the entity), so it runs in the shim's redactor or in any Presidio
``AnalyzerEngine`` alike. They are built to *over*-match rather than miss: a number that looks like a
phone number is redacted even when no numbering plan assigns it.

Addresses: US (and the English-speaking locales that write addresses the same way: house number,
street name, a USPS street suffix, unit or PO box; city, state and ZIP) come first; German-style
(``Hauptstraße 5``) and French-style (``12, rue de la Paix``) street lines are recognised too.
Another locale is added by passing a recognizer for it to ``Redaction(recognizers=...)``: e.g.
``PatternRecognizer(supported_entity="STREET_ADDRESS", patterns=[Pattern("nl", r"...", 0.6)])``.
"""

from __future__ import annotations

import regex as re
from presidio_analyzer import Pattern, PatternRecognizer

__all__ = ["AddressRecognizer", "PhonePatternRecognizer", "PaymentCardRecognizer", "IbanChecksumRecognizer",
           "card_network", "luhn_ok"]

# USPS Publication 28, appendix C1: street suffixes (primary names; an ``s`` may follow) and abbreviations.
_SUFFIX_NAMES = (
    "Alley Annex Arcade Avenue Bayou Beach Bend Bluff Bottom Boulevard Branch Bridge Brook Burg Bypass Camp "
    "Canyon Cape Causeway Center Centre Circle Cliff Close Club Common Corner Course Court Cove Creek Crescent "
    "Crest Crossing Crossroad Curve Dale Dam Divide Drive Estate Expressway Extension Fall Ferry Field Flat Ford "
    "Forest Forge Fork Fort Freeway Garden Gateway Glen Green Grove Harbor Harbour Haven Heights Highway Hill "
    "Hollow Inlet Island Isle Junction Key Knoll Lake Land Landing Lane Light Loaf Lock Lodge Loop Mall Manor "
    "Meadow Mews Mill Mission Motorway Mount Mountain Neck Orchard Oval Overpass Park Parkway Pass Passage "
    "Path Pike Pine Place Plain Plaza Point Port Prairie Radial Ramp Ranch Rapid Rest Ridge River Road Route "
    "Row Rue Run Shoal Shore Skyway Spring Spur Square Station Stravenue Stream Street Summit Terrace "
    "Throughway Trace Track Trafficway Trail Trailer Tunnel Turnpike Underpass Union Valley Viaduct View "
    "Village Ville Vista Walk Wall Way Well Wharf Yard"
).split()
_SUFFIX_ABBR = (
    "Aly Anx Arc Ave Av Byu Bch Bnd Blf Blfs Btm Blvd Br Brg Brk Brks Bg Bgs Byp Cp Cyn Cpe Cswy Ctr Ctrs Cir "
    "Cirs Clf Clfs Clb Cmn Cmns Cor Cors Crse Ct Cts Cv Cvs Crk Cres Crst Xing Xrd Xrds Curv Dl Dm Dv Dr Drs "
    "Est Ests Expy Ext Exts Fls Fry Fld Flds Flt Flts Frd Frds Frst Frg Frgs Frk Frks Ft Fwy Gdn Gdns Gtwy Gln "
    "Glns Grn Grns Grv Grvs Hbr Hbrs Hvn Hts Hwy Hl Hls Holw Inlt Iss Jct Jcts Ky Kys Knl Knls Lk Lks Lndg "
    "Ln Lgt Lgts Lf Lck Lcks Ldg Mnr Mnrs Mdw Mdws Ml Mls Msn Mtwy Mt Mtn Mtns Nck Orch Opas Pkwy Psge Pne "
    "Pnes Pl Pln Plns Plz Pt Pts Prt Prts Pr Radl Rnch Rpd Rpds Rst Rdg Rdgs Riv Rd Rds Rte Shl Shls Shr Shrs "
    "Skwy Spg Spgs Sq Sqs Sta Stra Strm St Sts Smt Ter Trwy Trce Trak Trfy Trl Trlr Tunl Tpke Upas Un Uns Vly "
    "Vlys Via Vw Vws Vlg Vlgs Vl Vis Wl Wls Wy"
).split()
_SUFFIX = "(?:" + "|".join(sorted({f"{n}s?" for n in _SUFFIX_NAMES} | set(_SUFFIX_ABBR), key=len,
                                  reverse=True)) + r")\.?"
_UNIT = r"(?:Apt|Apartment|Suite|Ste|Unit|Fl|Floor|Rm|Room|Bldg|Building|Lot|Trlr|Spc|Space|Dept|Flat|#)"
_WORD = r"(?:[[:upper:]][\w'’.-]{0,30}|\d{1,3}(?:st|nd|rd|th))"  # a street-name word: capitalised, or 42nd
_DIR = r"(?:(?i:[NSEW]|N[EW]|S[EW]|North|South|East|West)\.?\s+)"
_US_STATES = (
    "AL AK AZ AR CA CO CT DE DC FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ NM NY NC ND OH "
    "OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY AS GU MP PR VI FM MH PW AA AE AP "
    "AB BC MB NB NL NS NT NU ON PE QC SK YT"  # and Canada's provinces and territories
).split()

_DE_PARTICLE = "(?:van|von|vom|de|der|den|zu|zum|zur)"
_ADDRESS_PATTERNS = [
    # 4890 Bowers View Apt. 883 | 1600 W 42nd St., Suite 5 | 12B Elm Street #4
    Pattern("street line", rf"(?<![\w.,-])\d{{1,6}}[[:alpha:]]?(?:[-/]\d{{1,4}})?\s+{_DIR}?(?:{_WORD}\s+){{1,4}}"
                           rf"(?i:{_SUFFIX})(?![\w])(?:,?[ \t]+{_DIR})?"
                           rf"(?:,?\s*(?i:{_UNIT})\.?\s*#?\s*[\w-]{{1,8}})?", 0.6),
    # Apt. 750 / Suite 508 / Flat 3 on their own (a second address line)
    Pattern("unit", r"(?<![\w])(?i:Apt|Apartment|Suite|Ste|Flat|Studio|Unit)\.?\s*#?\s*\d[\w-]{0,7}(?![\w])", 0.5),
    Pattern("po box", r"(?<![\w])(?i:P\.?\s?O\.?\s?Box|Post\s+Office\s+Box|PO\s*Box|Box)\s*#?\s*\d{1,8}(?![\w])", 0.6),
    # military: PSC 1234, Box 5678 | Unit 1234 Box 5678 | USNS Smith | APO AE 12345
    Pattern("military", r"(?<![\w])(?:PSC\s+\d{1,5}|USNS|USNV|USCGC|USS\s+[[:upper:]][\w'-]{1,30}|"
                        r"(?:APO|FPO|DPO)\s+A[AEP]\s+\d{5})(?![\w])", 0.6),
    # Lake Joshua, VT 39100 | Springfield, IL 62704-1234
    Pattern("city state zip", rf"(?<![\w])(?:[[:upper:]][\w'’.-]{{0,30}}\s+){{0,3}}[[:upper:]][\w'’.-]{{0,30}},"
                              rf"\s*(?:{'|'.join(_US_STATES)})\s+(?:\d{{5}}(?:-\d{{4}})?|[A-Z]\d[A-Z]\s?\d[A-Z]\d)(?![\w])",
            0.6),
    # German-style: Judith-Kusch-Straße 658 | Spießstr. 92 | Niemeierweg 7 | Tlustekallee 3-3 | Dussen vanring 9/5
    Pattern("de street", rf"(?<![\w])(?:(?:[[:upper:]][\w'-]{{0,30}}|{_DE_PARTICLE})\s+){{0,4}}"
                         rf"(?:{_DE_PARTICLE}-?[\w'-]{{0,30}}|[[:upper:]][\w'-]{{0,30}})"
                         r"(?i:straße|strasse|str\.|weg|gasse|platz|allee|ring|damm|ufer|chaussee|"
                         r"pfad|steig|markt|graben|hof|berg|garten|park|kamp|feld)\s+\d{1,5}[[:alpha:]]?"
                         r"(?:\s?[-/]\s?\d{1,5})?(?![\w])", 0.6),
    # French-style: 468, chemin Jacqueline Didier | 19 bis rue de la Paix
    Pattern("fr street", r"(?<![\w])\d{1,5}(?:\s?(?:bis|ter))?,?\s+"
                         r"(?i:rue|avenue|av\.|boulevard|bd|chemin|allée|place|impasse|"
                         r"quai|route|cours|voie|square|passage|rond-point)\s+(?:(?:de|du|des|la|le)\s+|[ld]'\s*){0,3}"
                         r"[[:upper:]][\w'’-]{0,30}(?:[ \t]+[[:upper:]][\w'’-]{0,30}){0,2}", 0.6),
    Pattern("fr street name", r"(?<![\w])(?i:rue|boulevard|bd|chemin|allée|impasse|quai|avenue)\s+"
                              r"(?:(?:de|du|des|la|le)\s+|[ld]'\s*){0,3}"
                              r"[[:upper:]][\w'’-]{0,30}(?:[ \t]+[[:upper:]][\w'’-]{0,30}){0,2}", 0.5),
    # a postcode then a town on the next word: 74890 Witzenhausen (DE/FR style)
    Pattern("postcode town", r"(?<![\w])\d{5}\s+[[:upper:]][[:lower:]][\w'’-]{0,30}"
                             r"(?:\s+[[:upper:]][\w'’-]{1,30})?(?![\w])", 0.4),
    # UK postcode: W8G 7JR | SW1A 1AA
    Pattern("ca postcode", r"(?<![\w])[A-Z]\d[A-Z]\s?\d[A-Z]\d(?![\w])", 0.5),
    Pattern("uk postcode", r"(?<![\w])[A-Z]{1,2}\d[A-Z\d]?\s?\d[A-Z]{2}(?![\w])", 0.5),
]

# Phone numbers: an optional international prefix (+, 00, 001, 011 and a country code, maybe "(0)"),
# then digit groups split by spaces, dots, dashes or parentheses, then an optional extension.
_EXT = r"(?:\s*(?:x|ext\.?|extension|ext)\s*\d{1,6})?"
_PHONE_PATTERNS = [
    Pattern("grouped", r"(?<![\w.+-])(?:(?:\+|00|011)\s?\d{1,3}[\s.-]?(?:\(0\)\s?)?|1[\s.-])?"
                       r"(?:\(\d{1,5}\)[\s.-]?)?\d{1,5}(?:[\s.-]\d{1,8}){1,4}" + _EXT + r"(?![\w])", 0.5),
    Pattern("parenthesised", r"(?<![\w.+-])(?:(?:\+|00|011)\s?\d{1,3}[\s.-]?)?\(\d{1,5}\)[\s.-]?\d{2,8}"
                             r"(?:[\s.-]\d{1,8}){0,3}"
                             + _EXT + r"(?![\w])", 0.5),
    Pattern("international run", r"(?<![\w.+-])(?:\+|00|011)\s?(?:\d{1,3}[\s.-]?\(0\)\s?)?\d{6,15}" + _EXT
            + r"(?![\w])", 0.5),
    Pattern("digit run", r"(?<![\w.+-])\d{8,15}" + _EXT + r"(?![\w])", 0.3),
]
_PHONE_DIGITS = re.compile(r"\d")
_EXT_RE = re.compile(r"\s*(?:x|ext\.?|extension)\s*\d{1,6}$", re.IGNORECASE)
_DATE_LIKE = re.compile(r"^(?:\d{4}[-./]\d{1,2}[-./]\d{1,2}|\d{1,2}[-./]\d{1,2}[-./]\d{2,4})(?:[\sT]\d{1,2})?$")
_DECIMAL = re.compile(r"^\d{1,3}(?:,\d{3})*\.\d+$|^\d+\.\d{1,2}$")


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _in(prefix: int, lo: int, hi: int) -> bool:
    return lo <= prefix <= hi


def card_network(digits: str) -> str | None:
    """The network of a card number (digits only) by its IIN and length, or None."""
    n = len(digits)
    if not 12 <= n <= 19 or not digits.isdigit():
        return None
    p2, p3, p4, p6 = int(digits[:2]), int(digits[:3]), int(digits[:4]), int(digits[:6])
    if digits[0] == "4" and n in (13, 16, 19):
        return "visa"
    if (_in(p2, 51, 55) or _in(p4, 2221, 2720)) and n == 16:
        return "mastercard"
    if p2 in (34, 37) and n == 15:
        return "amex"
    if (p4 == 6011 or _in(p3, 644, 649) or p2 == 65 or _in(p6, 622126, 622925)) and 16 <= n <= 19:
        return "discover"
    if p2 == 35 and 16 <= n <= 19:  # JCB is 3528-3589; 3500-3527 is taken as JCB too (fail closed)
        return "jcb"
    if p2 == 62 and 16 <= n <= 19:
        return "unionpay"
    if (p2 in (36, 38, 39) or _in(p3, 300, 305) or p4 == 3095) and 14 <= n <= 19:
        return "diners"
    if (p2 == 50 or _in(p2, 56, 58) or p2 in (63, 67) or p2 == 60) and 12 <= n <= 19:
        return "maestro"
    if _in(p4, 2200, 2204) and 16 <= n <= 19:
        return "mir"
    if p2 in (81, 82) or p3 in (508, 353, 356):
        return "rupay" if 16 <= n <= 19 else None
    return None


class PaymentCardRecognizer(PatternRecognizer):
    """Card numbers of every current IIN range (Visa, Mastercard 51-55 and 2221-2720, Amex, Discover, JCB,
    Maestro, UnionPay, Diners, Mir, RuPay), 12 to 19 digits in any grouping, checked with Luhn (UnionPay
    numbers, which need not pass Luhn, are taken on their IIN and length)."""

    PATTERNS = [Pattern("card digits", r"(?<![\w.-])\d(?:[ .-]?\d){11,18}(?![\w])", 0.3)]
    CONTEXT = ["card", "credit", "debit", "visa", "mastercard", "amex", "discover", "jcb", "maestro", "unionpay",
               "diners", "cc", "pan", "paid", "payment"]

    def __init__(self) -> None:
        super().__init__(supported_entity="CREDIT_CARD", patterns=self.PATTERNS, context=self.CONTEXT,
                         supported_language="en", global_regex_flags=re.MULTILINE)

    def validate_result(self, pattern_text: str) -> bool | None:
        digits = "".join(ch for ch in pattern_text if ch.isdigit())
        network = card_network(digits)
        if network is None:
            return False
        return network == "unionpay" or luhn_ok(digits)


class PhonePatternRecognizer(PatternRecognizer):
    """Phone numbers as people write them: ``+1-780-563-6083x7783``, ``001-853-406-6157x397``,
    ``011 44 20 7946 0958``, ``(0161) 4960066``, ``+44(0)115 4960914``, ``206.269.0743``,
    ``5695554111 ext. 12``. Numbering plans are not consulted (an unassigned number is still redacted);
    dates and decimal amounts are not phone numbers."""

    CONTEXT = ["phone", "tel", "telephone", "mobile", "cell", "call", "fax", "number", "contact", "whatsapp"]

    def __init__(self) -> None:
        super().__init__(supported_entity="PHONE_NUMBER", patterns=_PHONE_PATTERNS, context=self.CONTEXT,
                         supported_language="en", global_regex_flags=re.MULTILINE | re.IGNORECASE)

    def validate_result(self, pattern_text: str) -> bool | None:
        core = _EXT_RE.sub("", pattern_text).strip()
        if _DATE_LIKE.match(core) or _DECIMAL.match(core):
            return False
        n = len(_PHONE_DIGITS.findall(core))
        return True if 7 <= n <= 17 else False


class AddressRecognizer(PatternRecognizer):
    """Street addresses: house number, street name and suffix with an optional unit (US and alike), PO boxes,
    military addresses, ``City, ST 12345`` lines, German- and French-style street lines, postcodes."""

    CONTEXT = ["address", "street", "live", "lives", "living", "located", "ship", "shipping", "deliver", "mail",
               "billing", "home", "residence", "apt", "suite"]

    def __init__(self) -> None:
        super().__init__(supported_entity="STREET_ADDRESS", patterns=_ADDRESS_PATTERNS, context=self.CONTEXT,
                         supported_language="en", global_regex_flags=re.MULTILINE)


def iban_ok(code: str) -> bool:
    s = code[4:] + code[:4]
    try:
        return int("".join(str(int(ch, 36)) for ch in s)) % 97 == 1
    except ValueError:
        return False


class IbanChecksumRecognizer(PatternRecognizer):
    """IBAN-shaped codes with a valid mod-97 checksum, whatever the country's registered length (Presidio's
    IBAN recognizer, which also runs, requires the registered length and format)."""

    PATTERNS = [Pattern("iban", r"(?<![\w])[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]){11,30}(?![\w])", 0.3)]
    CONTEXT = ["iban", "bank", "account", "transfer", "sepa"]

    def __init__(self) -> None:
        super().__init__(supported_entity="IBAN_CODE", patterns=self.PATTERNS, context=self.CONTEXT,
                         supported_language="en", global_regex_flags=re.MULTILINE)

    def validate_result(self, pattern_text: str) -> bool | None:
        return iban_ok(pattern_text.replace(" ", "").upper())
