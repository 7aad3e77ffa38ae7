-- What `ferry init --demo` adds to staging only, after recording the
-- baseline: a new business with its form and the form's fields, waiting to
-- be promoted. So `ferry diff staging production` (and the overview of
-- `ferry serve`) has something to show at once. `ferry demo` does not use
-- it: the tour makes its own edits (edits.sql).

PRAGMA foreign_keys = ON;

INSERT INTO businesses (id, partner_id, city_id, name, config, icon, view_count, created_by_team, modified_at)
VALUES (7, 1, 1, 'Manteigaria Chiado 🥧', '{"currency": "EUR", "languages": ["pt", "en"]}',
        NULL, 0, 'content', '2024-06-01 09:30:00');

INSERT INTO forms (id, business_id, title) VALUES (4, 7, 'Encomenda de pastéis de nata');

INSERT INTO form_fields (id, form_id, position, label, kind) VALUES
    (8, 4, 1, 'Nome', 'text'),
    (9, 4, 2, 'Quantidade', 'number'),
    (10, 4, 3, 'Hora de recolha', 'datetime');
