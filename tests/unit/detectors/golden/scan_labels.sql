SELECT arrayMap(t -> `cs0`[t], [1]) AS `h0`
FROM (SELECT arrayCumSum(countResampleIf(0, 2, 1)(toUInt16((`x0` >= 0.5)), `p0`)) AS `cs0`
      FROM (SELECT ifNull(`label_value`, 0) AS `x0`, isNotNull(`label_value`) AS `p0`
              FROM (SELECT l.label_value AS label_value, l.label_class AS label_class FROM (SELECT model, request_id FROM `driftline`.predictions FINAL WHERE model = 'm' AND `ts` >= toDateTime64('2026-01-01 00:00:00.000', 3, 'UTC') AND `ts` < toDateTime64('2026-01-01 01:00:00.000', 3, 'UTC')) AS p INNER JOIN (SELECT model, request_id, lab.1 AS label_value, lab.2 AS label_class, lab.3 AS label_ts
          FROM (SELECT model, request_id, argMax((label_value, label_class, ts), (ts, ingested_at, event_id)) AS lab
                FROM `driftline`.labels FINAL WHERE cityHash64(model, request_id) IN (SELECT cityHash64(model, request_id) FROM `driftline`.predictions WHERE model = 'm' AND `ts` >= toDateTime64('2026-01-01 00:00:00.000', 3, 'UTC') AND `ts` < toDateTime64('2026-01-01 01:00:00.000', 3, 'UTC'))
                GROUP BY model, request_id)) AS l ON p.model = l.model AND p.request_id = l.request_id) WHERE (1) AND 1)) SETTINGS compile_expressions = 0, compile_aggregate_expressions = 0
