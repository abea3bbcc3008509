"""The time series' bucket size follows the range: short ranges get fine buckets, long ones coarse, never too many."""

from __future__ import annotations

from collector.ops_api import MAX_POINTS, bucket_s


def test_bucket_size_follows_the_range() -> None:
    minutes = {15: 30, 60: 30, 360: 300, 1440: 900, 10080: 3600, 43200: 21600, 525600: 86400}
    assert {m: bucket_s(m * 60) for m in minutes} == minutes
    for m in range(1, 525600, 977):
        assert m * 60 / bucket_s(m * 60) <= max(MAX_POINTS, 525600 * 60 / 86400)
