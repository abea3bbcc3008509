"""Multivariate drift: a change in how features relate that no single feature shows.

Both tests work on bounded, deterministic samples read in SQL (:func:`read_sample`): at most
``sample`` rows of the reference and of the window, the rows with the smallest ``cityHash64`` of their
request id (the same rows on every run), each numeric feature from the ``features_num`` Map (NaN when
a row lacks it) and each categorical feature from ``features_cat``. Categories are frequency-encoded
(a value becomes its share of the reference sample; values outside its ``max_categories`` commonest
share the rest's frequency), as NannyML's CountEncoder does, so every feature is one column.

- **PCA reconstruction error** (NannyML's DataReconstructionDriftCalculator): impute (reference
  means), standardise, keep the principal components explaining ``variance`` of the reference
  sample's variance; a row's error is the Euclidean distance between its standardised values and their
  reconstruction, a window's value the mean error of its sample. The threshold is calibrated: the
  reference sample's rows are scored, cut into chunks of the window sample's size, and the band is
  the chunks' mean ± ``k``·σ; it is widened to at least the sampling band of a window's mean
  error, mean ± z·sd·sqrt(1/m + 1/n) (z for ``false_alert_rate`` two-sided; m, n the sample sizes), so
  that a few chunks cannot give a band that a stationary window leaves more often than that. The rows
  are scored twice, by the fitted PCA (NannyML's way) and out of fold (each fold by a PCA fitted
  without it), and the band covers both (:func:`reference_band`).
- **Domain classifier**: the AUC of a gradient-boosted classifier telling the reference sample from the
  window's, from stratified ``folds``-fold out-of-fold predictions (seeded). Under no drift the AUC is
  the Mann-Whitney statistic of exchangeable scores: mean 0.5, sd sqrt((n1 + n2 + 1) / (12 n1 n2)).
  The threshold is 0.5 + z·sd (z for ``false_alert_rate`` one-sided), and never below ``min_auc``
  (a separability too small to act on is not an alert, however large the samples).

Results: detector ``multivariate``, subject ``""``, tests ``pca_reconstruction`` and
``domain_classifier``; ``not enough data`` when a sample has fewer than ``min_rows`` rows or fewer
than two features are usable.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from collector.sql import SQL, ident, join, sql
from collector.store import Store
from detectors.drift_sql import Source, upload_source, window_source
from detectors.reference import Profile
from detectors.results import ALERT, OK, Result

__all__ = ["MultivariateConfig", "Sample", "read_sample", "reference_sample_source", "save_upload_sample",
           "Encoding", "encoding_of", "encode", "PcaModel", "fit_pca", "Band", "calibrate", "reference_band",
           "out_of_fold_errors", "domain_auc", "auc_threshold", "multivariate_results", "score_samples", "TESTS",
           "DETECTOR"]

DETECTOR = "multivariate"
TESTS = ("pca_reconstruction", "domain_classifier")
MAX_SAMPLE = 200_000
MAX_FEATURES = 200
MAX_CELLS = 2_000_000              # rows × features of one sample (16 MB as floats): wide models get fewer rows
UPLOAD_SAMPLE_ROWS = 50_000        # rows of an uploaded baseline kept for multivariate drift


@dataclass(frozen=True, kw_only=True)
class MultivariateConfig:
    """``{"multivariate": {"sample": 5000, "variance": 0.65, "k": 3, "tests": [...]}}``."""
    sample: int = 5000                 # rows sampled from the reference and from the window, each
    variance: float = 0.65             # share of the reference's variance the kept components explain
    k: float = 3.0                     # chunk band: mean ± k·σ of the reference chunks' errors
    tests: Sequence[str] = TESTS       # normalised to a tuple
    min_rows: int = 200                # fewer rows in a sample: not enough data
    false_alert_rate: float = 0.01     # the sampling floors of both thresholds
    min_auc: float = 0.55              # domain classifier: the smallest AUC that is an alert
    folds: int = 5
    max_categories: int = 20           # per categorical feature, encoded by frequency
    seed: int = 0

    @classmethod
    def parse(cls, d: Mapping[str, Any] | None) -> MultivariateConfig:
        """The ``multivariate`` block of a detector config; an unknown key is an error naming it."""
        if d is None:
            return cls()
        if not isinstance(d, Mapping):
            raise ValueError(f"multivariate: {d!r} is not a mapping of settings")
        known = set(cls.__dataclass_fields__)
        unknown = sorted(str(k) for k in d if k not in known)
        if unknown:
            raise ValueError(f"multivariate.{unknown[0]}: unknown setting; known: {sorted(known)}")
        return cls(**d)

    def __post_init__(self) -> None:
        tests = (self.tests,) if isinstance(self.tests, str) else tuple(self.tests)
        object.__setattr__(self, "tests", tests)
        bad = [t for t in tests if t not in TESTS]
        checks = [
            ("sample", isinstance(self.sample, int) and 2 <= self.sample <= MAX_SAMPLE,
             f"must be an integer in 2..{MAX_SAMPLE}"),
            ("variance", _num(self.variance) and 0 < self.variance <= 1, "must be a number in (0, 1]"),
            ("k", _num(self.k) and self.k > 0, "must be a positive number"),
            ("tests", not bad, f"unknown test(s) {bad}; known: {list(TESTS)}"),
            ("min_rows", isinstance(self.min_rows, int) and 2 <= self.min_rows, "must be an integer >= 2"),
            ("false_alert_rate", _num(self.false_alert_rate) and 0 < self.false_alert_rate < 0.5,
             "must be a number in (0, 0.5)"),
            ("min_auc", _num(self.min_auc) and 0.5 <= self.min_auc < 1, "must be a number in [0.5, 1)"),
            ("folds", isinstance(self.folds, int) and 2 <= self.folds <= 20, "must be an integer in 2..20"),
            ("max_categories", isinstance(self.max_categories, int) and self.max_categories >= 1,
             "must be a positive integer"),
            ("seed", isinstance(self.seed, int), "must be an integer"),
        ]
        for name, ok, why in checks:
            if not ok:
                raise ValueError(f"multivariate.{name}: {getattr(self, name)!r} {why}")


def _num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


# ---------------------------------------------------------------------------------------------- samples

@dataclass(frozen=True)
class Sample:
    """Rows of a source: numeric features (NaN: absent) and categorical ones (None: absent), row-aligned."""
    rows: int
    numeric: Mapping[str, np.ndarray]
    categorical: Mapping[str, list[str | None]]


def reference_sample_source(profile: Profile, version: str | None) -> Source | None:
    """Where the rows of a stored reference are: the predictions of its time window (a fixed window or the
    previous one), the row sample kept with an uploaded baseline's build (:func:`save_upload_sample`; its
    staged rows are deleted once profiled); None when neither is known."""
    if profile.source in ("window", "previous") and profile.window_end > profile.window_start:
        return window_source(profile.model, profile.window_start, profile.window_end, version)
    if profile.source == "upload" and profile.built_at is not None:
        # built_at as stored (milliseconds) or as the build returned it (microseconds): the same build
        return Source(sql("{db}.reference_samples"),
                      sql("model = %(m)s AND name = %(n)s AND abs(dateDiff('millisecond', built_at, %(b)s)) <= 1",
                          m=profile.model, n=profile.name, b=profile.built_at), has_ts=False)
    return None


def save_upload_sample(store: Store, upload_id: str, profile: Profile, *, rows: int | None = None) -> None:
    """Keep at most ``rows`` (default :data:`UPLOAD_SAMPLE_ROWS`) staged rows of an uploaded baseline (the
    smallest hashes, as :func:`read_sample` orders them) with its stored build ``profile``."""
    store.execute(sql(
        """INSERT INTO {db}.reference_samples (model, name, built_at, row_key, features_num, features_cat,
                                               features_null)
           SELECT %(m)s, %(n)s, %(b)s, %(key)s AS k, features_num, features_cat, features_null
           FROM {db}.reference_rows WHERE upload_id = %(u)s ORDER BY k LIMIT %(rows)s""",
        m=profile.model, n=profile.name, b=profile.built_at, key=_key(upload_source(upload_id)), u=upload_id,
        rows=int(UPLOAD_SAMPLE_ROWS if rows is None else rows)))


def _key(src: Source) -> SQL:
    """The sampling order: a hash of the request id (window rows), of the row's features otherwise."""
    return sql("cityHash64(request_id)") if src.has_ts else sql("cityHash64(features_num, features_cat)")


def read_sample(store: Store, src: Source, numeric: Sequence[str], categorical: Sequence[str], n: int) -> Sample:
    """At most ``n`` rows of ``src``, those with the smallest sampling hash (deterministic), in one query.

    When the source holds more than ``2n`` rows, only rows whose hash lies below ``3n/rows`` of the hash
    range are sorted (a cheap filter first; about ``3n`` rows pass, never fewer than ``n`` in practice,
    and the ``n`` smallest of them are the ``n`` smallest overall whenever at least ``n`` pass)."""
    total = int(store.scalar(sql("SELECT count() FROM %(t)s WHERE %(w)s", t=src.table, w=src.where)) or 0)
    if total == 0 or not (numeric or categorical):
        return Sample(0, {f: np.zeros(0) for f in numeric}, {f: [] for f in categorical})
    key = _key(src)
    cond = src.where
    if total > 2 * n:
        cut = min(2 ** 64 - 1, int(3 * n / total * 2 ** 64))
        cond = sql("(%(w)s) AND %(key)s <= toUInt64(%(cut)s)", w=src.where, key=key, cut=str(cut))
    cols = [sql("if(mapContains(features_num, %(f)s), features_num[%(f)s], nan)", f=f) for f in numeric]
    cols += [sql("if(mapContains(features_cat, %(f)s), [features_cat[%(f)s]], [])", f=f) for f in categorical]
    names = [f"c{i}" for i in range(len(cols))]
    inner = join(", ", [sql("%(e)s AS %(a)s", e=e, a=ident(a)) for e, a in zip(cols, names, strict=True)])
    outer = join(", ", [sql("groupArray(%(a)s) AS %(a)s", a=ident(a)) for a in names])
    r = store.rows(sql("""SELECT groupArray(k) AS k, %(outer)s
                          FROM (SELECT %(key)s AS k, %(inner)s FROM %(t)s WHERE %(cond)s ORDER BY k LIMIT %(n)s)""",
                       outer=outer, key=key, inner=inner, t=src.table, cond=cond, n=int(n)))[0]
    order = np.argsort(np.asarray(r["k"], dtype=np.uint64), kind="stable")   # groupArray's order is not fixed
    num = {f: _finite(np.asarray(r[names[i]], dtype=float)[order]) for i, f in enumerate(numeric)}
    cat = {f: [(v[0] if v else None) for v in np.asarray(r[names[len(numeric) + i]], dtype=object)[order]]
           for i, f in enumerate(categorical)}
    return Sample(len(order), num, cat)


def _finite(a: np.ndarray) -> np.ndarray:
    """Infinities are missing values here (they have no place on a principal axis)."""
    return np.where(np.isfinite(a), a, np.nan)


# ---------------------------------------------------------------------------------------------- encoding

@dataclass(frozen=True)
class Encoding:
    """Columns of the matrix: the numeric features, then the categorical ones by reference frequency."""
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    frequencies: Mapping[str, tuple[Mapping[str, float], float]]   # feature -> (top values' shares, rest's share)

    @property
    def columns(self) -> tuple[str, ...]:
        return self.numeric + self.categorical


def encoding_of(ref: Sample, max_categories: int) -> Encoding:
    """The encoding fitted on the reference sample: features it holds at least once."""
    num = tuple(f for f, v in ref.numeric.items() if np.isfinite(v).any())
    freqs: dict[str, tuple[dict[str, float], float]] = {}
    for f, vals in ref.categorical.items():
        seen = [v for v in vals if v is not None]
        if not seen:
            continue
        counts = Counter(seen).most_common()
        top = dict(counts[:max_categories])
        rest = sum(c for _, c in counts[max_categories:])
        freqs[f] = ({k: c / len(seen) for k, c in top.items()}, rest / len(seen))
    return Encoding(num, tuple(freqs), freqs)


def encode(s: Sample, enc: Encoding) -> np.ndarray:
    """The ``rows × columns`` matrix of a sample (NaN: a missing number)."""
    cols = [np.asarray(s.numeric.get(f, np.full(s.rows, np.nan)), dtype=float) for f in enc.numeric]
    for f in enc.categorical:           # a missing category is the commonest one (NannyML's most_frequent)
        top, rest = enc.frequencies[f]
        mode = max(top.values())
        vals = s.categorical.get(f) or [None] * s.rows
        cols.append(np.asarray([mode if v is None else top.get(v, rest) for v in vals], dtype=float))
    return np.column_stack(cols) if cols else np.zeros((s.rows, 0))


# ---------------------------------------------------------------------------------------------- PCA

@dataclass(frozen=True)
class PcaModel:
    """Imputation (means), standardisation and the kept principal axes of a reference matrix."""
    means: np.ndarray
    scales: np.ndarray
    components: np.ndarray              # kept axes, one per row
    explained: float                    # share of the variance they explain

    def standardise(self, x: np.ndarray) -> np.ndarray:
        x = np.where(np.isnan(x), self.means, x)
        return (x - self.means) / self.scales

    def row_errors(self, x: np.ndarray) -> np.ndarray:
        """Each row's Euclidean distance to its reconstruction (standardised units)."""
        return np.sqrt((self.residuals(x) ** 2).sum(axis=1))

    def residuals(self, x: np.ndarray) -> np.ndarray:
        z = self.standardise(x)
        return z - (z @ self.components.T) @ self.components


def fit_pca(x: np.ndarray, variance: float) -> PcaModel:
    """Fit on ``x`` (rows × columns, NaN: missing): the fewest axes explaining at least ``variance``."""
    means = np.nanmean(np.where(np.isnan(x).all(axis=0), 0.0, x), axis=0) if x.size else np.zeros(x.shape[1])
    means = np.where(np.isfinite(means), means, 0.0)
    filled = np.where(np.isnan(x), means, x)
    scales = filled.std(axis=0)
    scales = np.where(scales > 0, scales, 1.0)
    z = (filled - means) / scales
    _, s, vt = np.linalg.svd(z, full_matrices=False)
    var = s ** 2
    total = var.sum()
    if total <= 0:                      # every column constant: nothing to reconstruct but the mean
        return PcaModel(means, scales, np.zeros((0, x.shape[1])), 1.0)
    share = np.cumsum(var) / total
    keep = int(np.searchsorted(share, variance - 1e-12) + 1)
    keep = min(keep, len(var))
    return PcaModel(means, scales, vt[:keep], float(share[keep - 1]))


@dataclass(frozen=True)
class Band:
    lower: float
    upper: float
    method: str
    detail: Mapping[str, Any]


def _z(p: float) -> float:
    from scipy.stats import norm

    return float(norm.isf(p))


def calibrate(errors: np.ndarray, chunk: int, *, k: float, false_alert_rate: float) -> Band:
    """The band of a window's mean error, from the reference rows' out-of-fold ``errors`` and the window
    sample's size ``chunk``: mean ± k·σ over the reference cut into chunks of that size (where two or more
    chunks fit), widened to at least the sampling band mean ± z·sd·sqrt(1/chunk + 1/n)."""
    n = len(errors)
    mu, sd = float(errors.mean()), float(errors.std(ddof=1)) if n > 1 else 0.0
    z = _z(false_alert_rate / 2)
    half = z * sd * math.sqrt(1 / chunk + 1 / n)
    lo, hi = mu - half, mu + half
    chunks = n // chunk if chunk > 0 else 0
    detail: dict[str, Any] = {"reference_mean": mu, "reference_sd": sd, "chunk_size": int(chunk), "chunks": chunks,
                              "k": k, "z": z, "sampling_lower": lo, "sampling_upper": hi}
    if chunks >= 2:
        means = errors[:chunks * chunk].reshape(chunks, chunk).mean(axis=1)
        cm, cs = float(means.mean()), float(means.std(ddof=1))
        c_lo, c_hi = cm - k * cs, cm + k * cs
        detail.update(chunk_mean=cm, chunk_sd=cs, chunk_lower=c_lo, chunk_upper=c_hi)
        method = "calibrated:chunks" if c_lo <= lo and c_hi >= hi else "calibrated:chunks+sampling_floor"
        return Band(min(lo, c_lo), max(hi, c_hi), method, detail)
    return Band(lo, hi, "calibrated:sampling", detail)


def reference_band(x: np.ndarray, model: PcaModel, chunk: int, config: MultivariateConfig) -> Band:
    """The band of a window's mean error: the union of the bands (:func:`calibrate`) of the reference rows'
    errors under ``model`` (fitted on them: NannyML's way, a little optimistic) and out of fold (a little
    pessimistic). They agree on well-behaved data; on heavy-tailed data the held-out outliers inflate the
    out-of-fold mean while the fit absorbs them, and a window falls between the two (measured: either band
    alone put 5-40% of stationary lognormal/t(3) windows outside it, their union under 1%)."""
    kw = {"k": config.k, "false_alert_rate": config.false_alert_rate}
    fitted = calibrate(model.row_errors(x), chunk, **kw)
    held = calibrate(out_of_fold_errors(x, config.variance, config.folds), chunk, **kw)
    methods = {fitted.method, held.method}
    method = held.method if len(methods) == 1 else "calibrated:chunks+sampling_floor"
    detail = {**held.detail, "reference_errors": "fitted and out of fold (the band covers both)",
              "fitted_lower": fitted.lower, "fitted_upper": fitted.upper, "held_out_lower": held.lower,
              "held_out_upper": held.upper, "fitted_reference_mean": fitted.detail["reference_mean"]}
    return Band(min(fitted.lower, held.lower), max(fitted.upper, held.upper), method, detail)


def out_of_fold_errors(x: np.ndarray, variance: float, folds: int) -> np.ndarray:
    """Each reference row's error under a PCA fitted on the other folds (rows in sample order: their hashes,
    so the folds are contiguous runs of a random order)."""
    out = np.empty(len(x))
    for idx in np.array_split(np.arange(len(x)), folds):
        mask = np.ones(len(x), dtype=bool)
        mask[idx] = False
        out[idx] = fit_pca(x[mask], variance).row_errors(x[idx])
    return out


# ---------------------------------------------------------------------------------------------- domain classifier

def auc_threshold(n1: int, n2: int, *, false_alert_rate: float, min_auc: float) -> tuple[float, float]:
    """(threshold, sd of the AUC under no drift): max(min_auc, 0.5 + z·sd), sd the Mann-Whitney one."""
    sd = math.sqrt((n1 + n2 + 1) / (12 * n1 * n2))
    return max(min_auc, 0.5 + _z(false_alert_rate) * sd), sd


def domain_auc(ref: np.ndarray, cur: np.ndarray, *, folds: int, seed: int, columns: Sequence[str] = (),
               explain_above: float | None = None) -> tuple[float, list[dict[str, Any]]]:
    """Out-of-fold AUC of telling ``cur`` rows (label 1) from ``ref`` rows (label 0); when it reaches
    ``explain_above``, the top 5 ``columns`` by permutation importance (AUC drop) on the first fold's held-out
    rows, under that fold's classifier."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

    x = np.vstack([ref, cur])
    y = np.concatenate([np.zeros(len(ref)), np.ones(len(cur))])
    scores = np.empty(len(y))
    first: tuple[Any, np.ndarray] | None = None
    with threadpool_limits(limits=1):                  # see score_samples
        for train, test in StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(x, y):
            clf = HistGradientBoostingClassifier(max_iter=50, learning_rate=0.2, max_leaf_nodes=15,
                                                 early_stopping=False, random_state=seed)
            clf.fit(x[train], y[train])
            scores[test] = clf.predict_proba(x[test])[:, 1]
            first = first or (clf, test)
    auc = float(roc_auc_score(y, scores))
    top: list[dict[str, Any]] = []
    if explain_above is not None and auc >= explain_above and first is not None and columns:
        from sklearn.inspection import permutation_importance

        clf, test = first
        with threadpool_limits(limits=1):
            imp = permutation_importance(clf, x[test], y[test], scoring="roc_auc", n_repeats=3, random_state=seed)
        order = np.argsort(-imp.importances_mean)[:5]
        top = [{"feature": columns[i], "auc_drop": float(imp.importances_mean[i])} for i in order
               if imp.importances_mean[i] > 0]
    return auc, top


# ---------------------------------------------------------------------------------------------- results

def multivariate_results(store: Store, profile: Profile, window: Source, config: MultivariateConfig, *,
                         version: str | None = None, reference: Source | None = None) -> list[Result]:
    """The configured multivariate tests of ``window`` against ``profile``'s rows (``reference``: where
    they are; by default :func:`reference_sample_source`)."""
    tests = list(config.tests)
    if not tests:
        return []
    ref_src = reference if reference is not None else reference_sample_source(profile, version)
    if ref_src is None:
        why = (f"reference {profile.name!r} ({profile.source}) keeps no rows to sample: multivariate drift needs a "
               "time-window reference (a fixed window or the previous window) or an uploaded baseline")
        return [Result.no_data(DETECTOR, "", t, why) for t in tests]
    feats = sorted(f for f, fp in profile.features.items() if not f.startswith("@") and fp.kind != "null")
    numeric = [f for f in feats if profile.features[f].kind == "numeric"][:MAX_FEATURES]
    categorical = [f for f in feats if profile.features[f].kind == "categorical"][:MAX_FEATURES - len(numeric)]
    if len(numeric) + len(categorical) < 2:
        why = f"reference {profile.name!r} has {len(numeric) + len(categorical)} feature(s): multivariate drift needs 2"
        return [Result.no_data(DETECTOR, "", t, why) for t in tests]
    n = max(2, min(config.sample, MAX_CELLS // (len(numeric) + len(categorical))))
    ref = read_sample(store, ref_src, numeric, categorical, n)
    if ref.rows == 0 and profile.source == "upload":
        why = (f"uploaded reference {profile.name!r} has no stored row sample (built before samples were kept): "
               "upload it again")
        return [Result.no_data(DETECTOR, "", t, why) for t in tests]
    cur = read_sample(store, window, numeric, categorical, n)
    out = score_samples(ref, cur, config)
    if n < config.sample:   # say so on every result: the samples are smaller than configured
        out = [replace(r, detail={**r.detail, "sample_capped": n}) for r in out]
    return out


def score_samples(ref: Sample, cur: Sample, config: MultivariateConfig) -> list[Result]:
    """The configured tests on two samples (pure: no store), on one BLAS/OpenMP thread: on a CPU shared with
    the store's queries, idle threads spinning for work made the small SVDs and the classifier 2-10x slower
    than one thread (measured)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        return _score(ref, cur, config)


def _score(ref: Sample, cur: Sample, config: MultivariateConfig) -> list[Result]:
    tests = list(config.tests)
    sizes = {"reference_sample": ref.rows, "window_sample": cur.rows}
    small = [f"{k.replace('_', ' ')} has {v} rows (fewer than min_rows={config.min_rows})"
             for k, v in sizes.items() if v < config.min_rows]
    if small:
        return [Result.no_data(DETECTOR, "", t, "; ".join(small), sample_size=cur.rows, **sizes) for t in tests]
    enc = encoding_of(ref, config.max_categories)
    if len(enc.columns) < 2:
        return [Result.no_data(DETECTOR, "", t, f"{len(enc.columns)} usable feature(s): multivariate drift needs 2",
                               sample_size=cur.rows, **sizes) for t in tests]
    xr, xc = encode(ref, enc), encode(cur, enc)
    common = {**sizes, "features": len(enc.columns), "numeric_features": len(enc.numeric),
              "categorical_features": len(enc.categorical)}
    out = []
    if "pca_reconstruction" in tests:
        out.append(_pca_result(xr, xc, enc.columns, config, common))
    if "domain_classifier" in tests:
        out.append(_domain_result(xr, xc, enc.columns, config, common))
    return out


def _pca_result(xr: np.ndarray, xc: np.ndarray, columns: Sequence[str], config: MultivariateConfig,
                common: Mapping[str, Any]) -> Result:
    model = fit_pca(xr, config.variance)
    band = reference_band(xr, model, len(xc), config)
    value = float(model.row_errors(xc).mean())
    alert = value > band.upper or value < band.lower
    detail: dict[str, Any] = {**common, "threshold_method": band.method, "lower": band.lower, "upper": band.upper,
                              "components": int(model.components.shape[0]), "explained_variance": model.explained,
                              "variance": config.variance, **band.detail}
    if alert:   # which columns reconstruct worse than in the reference: mean squared residual, window - reference
        gap = (model.residuals(xc) ** 2).mean(axis=0) - (model.residuals(xr) ** 2).mean(axis=0)
        detail["top_features"] = [{"feature": columns[i], "residual_increase": float(gap[i])}
                                  for i in np.argsort(-gap)[:5] if gap[i] > 0]
    return Result(detector=DETECTOR, subject="", test="pca_reconstruction", value=value, threshold=band.upper,
                  status=ALERT if alert else OK, sample_size=len(xc), detail=detail)


def _domain_result(xr: np.ndarray, xc: np.ndarray, columns: Sequence[str], config: MultivariateConfig,
                   common: Mapping[str, Any]) -> Result:
    thr, sd = auc_threshold(len(xr), len(xc), false_alert_rate=config.false_alert_rate, min_auc=config.min_auc)
    auc, top = domain_auc(xr, xc, folds=config.folds, seed=config.seed, columns=columns, explain_above=thr)
    alert = auc >= thr
    detail: dict[str, Any] = {**common, "auc": auc, "threshold_method": "calibrated:mann_whitney_h0+min_auc",
                              "null_sd": sd, "min_auc": config.min_auc, "false_alert_rate": config.false_alert_rate,
                              "folds": config.folds, "classifier": "HistGradientBoostingClassifier"}
    if alert:
        detail["top_features"] = top
    return Result(detector=DETECTOR, subject="", test="domain_classifier", value=auc, threshold=thr,
                  status=ALERT if alert else OK, sample_size=len(xc), detail=detail)


