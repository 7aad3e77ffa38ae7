-- The edits a product manager (and QA) make in staging during `ferry demo`.

PRAGMA foreign_keys = ON;

-- 1. Rename a business, with an emoji.
UPDATE businesses
   SET name = 'Confiserie Sprüngli 🍫', modified_at = '2024-06-03 10:00:00'
 WHERE id = 3;

-- 2. A new business, by a new partner, in a new city, with an icon.
INSERT INTO cities (id, name, country) VALUES (4, 'São Paulo', 'BR');
INSERT INTO partners (id, name, city_id) VALUES (4, 'Padarias Paulistanas', 4);
INSERT INTO businesses (id, partner_id, city_id, name, config, icon, view_count, created_by_team, modified_at)
VALUES (7, 4, 4, 'Padaria Pão de Açúcar 🥐', '{"currency": "BRL", "languages": ["pt"], "delivery": true}',
        X'89504E470D0A1A0A0000000D494844520000FF00', 0, 'content', '2024-06-03 10:05:00');

-- 3. A new form for it, with its fields.
INSERT INTO forms (id, business_id, title) VALUES (4, 7, 'Encomenda de bolos 🎂 — São Paulo');
INSERT INTO form_fields (id, form_id, position, label, kind) VALUES
    (8, 4, 1, 'Nome completo', 'text'),
    (9, 4, 2, 'Sabor', 'choice'),
    (10, 4, 3, 'Mensagem no bolo 📝', 'text');

-- 4. QA's test business: it must never reach production.
INSERT INTO businesses (id, partner_id, city_id, name, config, icon, view_count, created_by_team, modified_at)
VALUES (8, 1, 1, '[QA] checkout smoke test', '{"currency": "EUR"}', NULL, 0, 'qa', '2024-06-03 10:10:00');

-- 5. The shop stopped selling candles: a field the form no longer needs.
DELETE FROM form_fields WHERE id = 5;

-- 6. Visitors keep coming to staging: its own view count, not content.
UPDATE businesses SET view_count = 1999 WHERE id = 1;
