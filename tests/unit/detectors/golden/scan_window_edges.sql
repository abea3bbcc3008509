SELECT arrayMap(t -> `cs0`[t], [1, 2, 3]) AS `h0`,
       arrayMap(t -> `cs1`[t], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20]) AS `h1`,
       arrayMap(t -> `cs2`[t], [2, 3, 5]) AS `h2`,
       [] AS `h3`
FROM (SELECT arrayCumSum(countResampleIf(0, 4, 1)(toUInt16((`x0` >= 1.0) + (`x0` >= 2.5) + (`x0` >= 4.0)), `p0`)) AS `cs0`,
       arrayCumSum(countResampleIf(0, 21, 1)(transform(roundDown(`x1`, [-inf, 0.0, 0.05263157894736842, 0.10526315789473684, 0.15789473684210525, 0.21052631578947367, 0.2631578947368421, 0.3157894736842105, 0.3684210526315789, 0.42105263157894735, 0.47368421052631576, 0.5263157894736842, 0.5789473684210527, 0.631578947368421, 0.6842105263157894, 0.7368421052631579, 0.7894736842105263, 0.8421052631578947, 0.894736842105263, 0.9473684210526315, 1.0]), [-inf, 0.0, 0.05263157894736842, 0.10526315789473684, 0.15789473684210525, 0.21052631578947367, 0.2631578947368421, 0.3157894736842105, 0.3684210526315789, 0.42105263157894735, 0.47368421052631576, 0.5263157894736842, 0.5789473684210527, 0.631578947368421, 0.6842105263157894, 0.7368421052631579, 0.7894736842105263, 0.8421052631578947, 0.894736842105263, 0.9473684210526315, 1.0], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20], 0), `p1`)) AS `cs1`,
       arrayCumSum(countResampleIf(0, 8, 1)((`x2` >= 0.0) + (`x2` >= 5.0) + (`x2` >= 0.0) + toUInt32(least(greatest((`x2` - 0.0) * 0.4, 0), 4)), `p2`)) AS `cs2`,
       arrayCumSum(countResampleIf(0, 1, 1)(0, `p3`)) AS `cs3`
      FROM (SELECT features_num.values[transform(num_layout, [11, 22], [1, 2], 0)] AS `x0`, transform(num_layout, [11, 22], [1, 2], 0) > 0 AS `p0`,
                     features_num.values[transform(num_layout, [11, 22], [2, 1], 0)] AS `x1`, transform(num_layout, [11, 22], [2, 1], 0) > 0 AS `p1`,
                     features_num.values[transform(num_layout, [11, 22], [0, 3], 0)] AS `x2`, transform(num_layout, [11, 22], [0, 3], 0) > 0 AS `p2`,
                     ifNull(`pred_value`, 0) AS `x3`, isNotNull(`pred_value`) AS `p3`
              FROM `driftline`.predictions FINAL WHERE (model = 'm' AND `ts` >= toDateTime64('2026-01-01 00:00:00.000', 3, 'UTC') AND `ts` < toDateTime64('2026-01-01 01:00:00.000', 3, 'UTC')) AND num_layout IN (11, 22)
              UNION ALL
              SELECT features_num['a'] AS `x0`, mapContains(features_num, 'a') AS `p0`,
                     features_num['b'] AS `x1`, mapContains(features_num, 'b') AS `p1`,
                     features_num['c'] AS `x2`, mapContains(features_num, 'c') AS `p2`,
                     ifNull(`pred_value`, 0) AS `x3`, isNotNull(`pred_value`) AS `p3`
              FROM `driftline`.predictions FINAL WHERE (model = 'm' AND `ts` >= toDateTime64('2026-01-01 00:00:00.000', 3, 'UTC') AND `ts` < toDateTime64('2026-01-01 01:00:00.000', 3, 'UTC')) AND num_layout NOT IN (11, 22))) SETTINGS compile_expressions = 0, compile_aggregate_expressions = 0
