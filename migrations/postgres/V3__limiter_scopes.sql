-- What the rate limiter learned, per scope: kept so a restarted or second node starts from it
-- (rate, throttle mark, a pause still running when written). One row per scope; the limiter
-- decays entries by `learned_at` when it reads them back.
CREATE TABLE limiter_scopes (
    scope        text PRIMARY KEY,
    rate         double precision NOT NULL,
    mark         double precision,
    paused_until timestamptz,
    learned_at   timestamptz NOT NULL
);
