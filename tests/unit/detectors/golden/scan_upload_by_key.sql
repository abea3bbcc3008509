SELECT `h0`,
       `n0`, `lo0`, `hi0`, `mean0`, `std0`
FROM (SELECT countResampleIf(0, 6, 1)((`x0` >= 0.0) + toUInt32(least(greatest((`x0` - 0.0) * 0.4, 0), 4)), `p0`) AS `h0`,
       countIf(`p0`) AS `n0`, minIf(`x0`, `p0`) AS `lo0`, maxIf(`x0`, `p0`) AS `hi0`, avgIf(`x0`, `p0`) AS `mean0`, stddevPopIf(`x0`, `p0`) AS `std0`
      FROM (SELECT features_num['a'] AS `x0`, mapContains(features_num, 'a') AS `p0`
              FROM `driftline`.reference_rows WHERE (upload_id = 'u1') AND 1)) SETTINGS compile_expressions = 0, compile_aggregate_expressions = 0
