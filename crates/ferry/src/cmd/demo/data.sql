-- Ferry's sample content: what `ferry demo` tours and `ferry init --demo`
-- leaves to play with. The same script makes staging.db and production.db,
-- so both environments start identical.
--
-- The tables model an admin tool's content: cities, partners, the
-- businesses partners run, and the forms (with their fields) those
-- businesses show. Names carry accents and emoji; icons are binary.

PRAGMA foreign_keys = ON;

CREATE TABLE cities (
    id      INTEGER PRIMARY KEY,
    name    TEXT NOT NULL,
    country TEXT NOT NULL
);

CREATE TABLE partners (
    id      INTEGER PRIMARY KEY,
    name    TEXT NOT NULL,
    city_id INTEGER NOT NULL REFERENCES cities (id)
);

CREATE TABLE businesses (
    id              INTEGER PRIMARY KEY,
    partner_id      INTEGER REFERENCES partners (id),
    city_id         INTEGER NOT NULL REFERENCES cities (id),
    name            TEXT NOT NULL,
    config          TEXT NOT NULL DEFAULT '{}',         -- JSON, as the app stores it
    icon            BLOB,                               -- a small image, NULL when none
    view_count      INTEGER NOT NULL DEFAULT 0,         -- counted by each environment itself
    created_by_team TEXT NOT NULL DEFAULT 'content',    -- 'content', 'qa' or 'dev'
    modified_at     TEXT                                -- apps sync by it
);

CREATE TABLE forms (
    id          INTEGER PRIMARY KEY,
    business_id INTEGER NOT NULL REFERENCES businesses (id),
    title       TEXT NOT NULL
);

CREATE TABLE form_fields (
    id       INTEGER PRIMARY KEY,
    form_id  INTEGER NOT NULL REFERENCES forms (id),
    position INTEGER NOT NULL,
    label    TEXT NOT NULL,
    kind     TEXT NOT NULL
);

INSERT INTO cities (id, name, country) VALUES
    (1, 'Lisboa', 'PT'),
    (2, 'Zürich', 'CH'),
    (3, 'Kraków', 'PL');

INSERT INTO partners (id, name, city_id) VALUES
    (1, 'Pastelarias Unidas', 1),
    (2, 'Genuss AG', 2),
    (3, 'Smaki Małopolski', 3);

INSERT INTO businesses (id, partner_id, city_id, name, config, icon, view_count, created_by_team, modified_at) VALUES
    (1, 1, 1, 'Pastéis de Belém', '{"currency": "EUR", "languages": ["pt", "en"], "delivery": true}',
        X'89504E470D0A1A0A0001FF', 1520, 'content', '2024-05-02 09:14:00'),
    (2, 1, 1, 'Café A Brasileira ☕', '{"currency": "EUR", "languages": ["pt"]}',
        NULL, 880, 'content', '2024-05-03 16:40:12'),
    (3, 2, 2, 'Sprüngli', '{"currency": "CHF", "languages": ["de", "fr", "en"]}',
        X'47494638396101000100800000FFFFFF', 2311, 'content', '2024-04-18 08:00:00'),
    (4, 2, 2, 'Bergrestaurant Älpli', '{"currency": "CHF", "opening": {"mon": null, "tue": "11-22"}}',
        NULL, 97, 'content', '2024-04-20 12:30:00'),
    (5, 3, 3, 'Pierogarnia Zapiecek 🥟', '{"currency": "PLN", "languages": ["pl", "en"]}',
        X'FFD8FFE000104A464946', 640, 'content', '2024-05-10 10:05:33'),
    (6, 3, 3, 'Kawiarnia Noworolski', '{"currency": "PLN"}',
        NULL, 45, 'content', '2024-05-11 14:20:00');

INSERT INTO forms (id, business_id, title) VALUES
    (1, 1, 'Reserva de mesa'),
    (2, 3, 'Tortenbestellung – Größe & Abholung'),
    (3, 5, 'Opinia o wizycie ⭐');

INSERT INTO form_fields (id, form_id, position, label, kind) VALUES
    (1, 1, 1, 'Nome', 'text'),
    (2, 1, 2, 'Data e hora', 'datetime'),
    (3, 1, 3, 'Número de pessoas', 'number'),
    (4, 2, 1, 'Größe', 'choice'),
    (5, 2, 2, 'Anzahl Kerzen', 'number'),
    (6, 3, 1, 'Ocena ★★★★★', 'rating'),
    (7, 3, 2, 'Komentarz', 'text');
