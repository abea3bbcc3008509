"""Benchmark: delete one subject from a store of N predictions (default 10M) on chDB.

Loads, inside ClickHouse (``INSERT ... SELECT FROM numbers(N)``, not timed), N predictions spread over 30 days
(30 daily partitions; 5 numeric features, a slice, a score, latency) of 10 models, with their subject hashes
drawn from ``--subjects`` distinct subjects, N/10 labels and 10,000 dead letters of the same subjects. Then
times :meth:`collector.subjects.Subjects.delete` of one subject (counting its rows, ``ALTER TABLE ... DELETE``
with ``mutations_sync = 2`` on predictions, labels and dead letters, counting again, the audit entry) and
prints the rows removed per table and the rows of the parts the mutations rewrote (read and written
again: "rows touched"). A second query after ``OPTIMIZE ... FINAL`` checks that none is left. Last line:
``subject_delete rows=… seconds=… removed=… rewritten=…``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # this checkout, not an install

from collector.migrations import migrate  # noqa: E402
from collector.sql import ident, sql  # noqa: E402
from collector.store import ChdbStore  # noqa: E402
from collector.subjects import SUBJECT_COLUMNS, SubjectHasher, Subjects  # noqa: E402
from driftline.server import all_migrations  # noqa: E402

DAY_MS = 86_400_000
CHUNK = 1_000_000

# a subject's hash for subject number k, the same in SQL and in Python: 'h:' + the first 32 hex digits of md5(k)
_HASH_SQL = "concat('h:', substring(lower(hex(MD5(toString(%(k)s)))), 1, 32))"


def subject_hash(k: int) -> str:
    return "h:" + hashlib.md5(str(k).encode()).hexdigest()[:32]  # noqa: S324 - test data, not a secret


def load(store: ChdbStore, n: int, subjects: int, t0_ms: int) -> None:
    span = 30 * DAY_MS
    for start in range(0, n, CHUNK):
        rows = min(CHUNK, n - start)
        k = sql("modulo(number * 2654435761, %(s)s)", s=subjects)       # subjects spread over every part
        store.execute(sql(
            """INSERT INTO {db}.predictions (event_id, ts, model, model_version, request_id, features_num, features_cat,
                   features_null, pred_value, pred_label, pred_score, pred_probs, slices, latency_ms, status,
                   error_type,
                   schema_version, subject_hash)
               SELECT concat('p-', toString(number)),
                   fromUnixTimestamp64Milli(toInt64(%(t0)s + modulo(number * 7919, %(span)s))),
                   concat('model-', toString(modulo(number, 10))), 'v1', concat('r-', toString(number)),
                   map('f1', rand() / 4e9, 'f2', rand(1) / 4e9, 'f3', rand(2) / 4e9, 'f4', rand(3) / 4e9,
                       'f5', rand(4) / 4e9),
                   map(), [], NULL, NULL, rand(5) / 4.3e9, map(),
                   map('region', ['eu', 'us', 'apac'][modulo(number, 3) + 1]),
                   modulo(rand(6), 200), 'ok', '', 1, %(h)s
               FROM numbers(%(start)s, %(rows)s) SETTINGS optimize_on_insert = 0""",
            t0=t0_ms, span=span, start=start, rows=rows, h=sql(_HASH_SQL, k=k)))
    store.execute(sql(
        """INSERT INTO {db}.labels (event_id, ts, model, request_id, label_value, label_class, schema_version,
                                   subject_hash)
           SELECT concat('l-', toString(number)),
               fromUnixTimestamp64Milli(toInt64(%(t0)s + modulo(number * 7919, %(span)s))),
               concat('model-', toString(modulo(number, 10))), concat('r-', toString(number)), modulo(rand(), 2),
               NULL, 1, %(h)s
           FROM numbers(0, %(rows)s) WHERE modulo(number, 10) = 0""",
        t0=t0_ms, span=span, rows=n, h=sql(_HASH_SQL, k=sql("modulo(number * 2654435761, %(s)s)", s=subjects))))
    store.execute(sql(
        """INSERT INTO {db}.dead_letters_v2 (source, kind, event_index, event_id, field, reason, payload,
                                            subject_hashes)
           SELECT 'http', 'prediction', number, concat('d-', toString(number)), 'latency_ms', 'must be >= 0', '{}',
                  [%(h)s]
           FROM numbers(10000)""", h=sql(_HASH_SQL, k=sql("modulo(number * 2654435761, %(s)s)", s=subjects))))


def parts(store: ChdbStore) -> dict[str, int]:
    """Active parts by the digest of their files (a part a mutation left alone is hard-linked under a new name
    with the same files; one it rewrote has new files) and their rows."""
    rows = store.rows(sql("SELECT table, hash_of_all_files AS h, rows FROM system.parts "
                          "WHERE database = %(d)s AND active "
                          "AND has(%(t)s, table)", d=store.database, t=list(SUBJECT_COLUMNS)))
    return {f"{r['table']}/{r['h']}": int(r["rows"]) for r in rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=10_000_000, help="stored predictions")
    ap.add_argument("--subjects", type=int, default=100_000, help="distinct subjects among them")
    ap.add_argument("--subject", type=int, default=None,
                    help="which subject to delete "
                         "(default: the one of prediction 10, which has labels and dead letters)")
    ap.add_argument("--path", default=None, help="chDB path (default: a temporary one, removed after)")
    a = ap.parse_args()
    path = a.path or tempfile.mkdtemp(prefix="driftline-bench-subjects-")
    try:
        store = ChdbStore(path, database="bench_subjects")
        store.drop_database()
        store.create_database()
        migrate(store, all_migrations())
        t = time.perf_counter()
        load(store, a.rows, a.subjects, int(time.time() * 1000) - 30 * DAY_MS)
        stored = {tb: int(store.scalar(sql("SELECT count() FROM {db}.%(t)s", t=ident(tb)))) for tb in SUBJECT_COLUMNS}
        print(f"loaded {stored} in {time.perf_counter() - t:.1f} s (not timed below)", flush=True)
        store.execute("OPTIMIZE TABLE {db}.predictions")  # settle the last inserts' parts as a live store would
        h = subject_hash(a.subject if a.subject is not None else 10 * 2654435761 % a.subjects)
        before = parts(store)
        subjects = Subjects(store, SubjectHasher(None))
        t = time.perf_counter()
        report = subjects.delete(h, hashed=True, actor="cli:bench")
        seconds = time.perf_counter() - t
        after = parts(store)
        rewritten = sum(r for p, r in after.items() if p not in before)
        print(f"deleted in {seconds:.2f} s; removed per table: {report['removed']} (remaining {report['remaining']})",
              flush=True)
        print(f"parts rewritten: {sum(1 for p in after if p not in before)} of {len(after)}, "
              f"holding {rewritten:,} rows "
              f"(of {sum(after.values()):,})", flush=True)
        for tb in SUBJECT_COLUMNS:
            store.execute(sql("OPTIMIZE TABLE {db}.%(t)s FINAL", t=ident(tb)))
        left = subjects.count(h)
        assert not any(left.values()), left
        print(f"after OPTIMIZE ... FINAL a second query finds {left}")
        print(f"subject_delete rows={a.rows} seconds={seconds:.2f} removed={report['total_removed']} "
              f"rewritten={rewritten}")
    finally:
        if a.path is None:
            shutil.rmtree(path, ignore_errors=True)


if __name__ == "__main__":
    main()
    # chDB 4.4 can crash in its own global shutdown at interpreter exit (after everything is printed): leave
    # without it, as `driftline` does (driftline.cli.run)
    sys.stdout.flush()
    os._exit(0)
