SELECT g                                                      AS order_id,
       (g % 1000) + 1                                         AS customer_id,
       (((g * 7919) % 100000) / 100.0)::numeric(12, 2)       AS amount,
       g % 3 = 0                                              AS paid,
       DATE '2026-01-01' + (g % 300)                          AS order_date,
       TIMESTAMPTZ '2026-01-01 00:00:00+00' + g * INTERVAL '37 seconds' AS placed_at,
       CASE WHEN g % 50 = 0 THEN NULL ELSE 'order #' || g END AS note,
       jsonb_build_object('channel', (ARRAY['web', 'shop', 'phone'])[g % 3 + 1],
                          'items', g % 7 + 1)                 AS details,
       md5(g::text)::uuid                                     AS order_ref
FROM generate_series(1, 100000) AS g
