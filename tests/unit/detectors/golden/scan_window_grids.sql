SELECT `h0`,
       `n0`, `lo0`, `hi0`, `mean0`, `std0`,
       `h1`,
       `n2`, `lo2`, `hi2`, `mean2`, `std2`
FROM (SELECT countResampleIf(0, 6, 1)((`x0` >= 0.0) + toUInt32(least(greatest((`x0` - 0.0) * 0.4, 0), 4)), `p0`) AS `h0`,
       countIf(`p0`) AS `n0`, minIf(`x0`, `p0`) AS `lo0`, maxIf(`x0`, `p0`) AS `hi0`, avgIf(`x0`, `p0`) AS `mean0`, stddevPopIf(`x0`, `p0`) AS `std0`,
       countResampleIf(0, 4, 1)((`x1` >= 0.0) + toUInt32(least(greatest((`x1` - 0.0) * 2.0, 0), 2)), `p1`) AS `h1`,
       countIf(`p2`) AS `n2`, minIf(`x2`, `p2`) AS `lo2`, maxIf(`x2`, `p2`) AS `hi2`, avgIf(`x2`, `p2`) AS `mean2`, stddevPopIf(`x2`, `p2`) AS `std2`
      FROM (SELECT features_num.values[transform(num_layout, [11, 22], [1, 2], 0)] AS `x0`, transform(num_layout, [11, 22], [1, 2], 0) > 0 AS `p0`,
                     ifNull(`pred_score`, 0) AS `x1`, isNotNull(`pred_score`) AS `p1`,
                     features_num.values[transform(num_layout, [11, 22], [0, 3], 0)] AS `x2`, transform(num_layout, [11, 22], [0, 3], 0) > 0 AS `p2`
              FROM `driftline`.predictions FINAL WHERE (model = 'm' AND `ts` >= toDateTime64('2026-01-01 00:00:00.000', 3, 'UTC') AND `ts` < toDateTime64('2026-01-01 01:00:00.000', 3, 'UTC') AND model_version = 'v1') AND num_layout IN (11, 22)
              UNION ALL
              SELECT features_num['a'] AS `x0`, mapContains(features_num, 'a') AS `p0`,
                     ifNull(`pred_score`, 0) AS `x1`, isNotNull(`pred_score`) AS `p1`,
                     features_num['c'] AS `x2`, mapContains(features_num, 'c') AS `p2`
              FROM `driftline`.predictions FINAL WHERE (model = 'm' AND `ts` >= toDateTime64('2026-01-01 00:00:00.000', 3, 'UTC') AND `ts` < toDateTime64('2026-01-01 01:00:00.000', 3, 'UTC') AND model_version = 'v1') AND num_layout NOT IN (11, 22))) SETTINGS compile_expressions = 0, compile_aggregate_expressions = 0
