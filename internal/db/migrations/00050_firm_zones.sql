-- +goose Up
-- Each firm's own time zone (tenants.timezone) decides its "today" and "tomorrow", the
-- days before its deadlines, its analytics snapshot date, the times in its
-- notifications and the hour of its daily jobs. What follows lets every job, and the
-- ticker, read a firm's zone the same way, in the same set-based statements.

-- The names of the tz database, as this server knows them. A firm's zone is its own
-- only when it is one of these, spelled exactly: PostgreSQL also accepts abbreviations
-- ("IST", which it reads as Israel's) and POSIX specs ("UTC+5", which it reads as five
-- hours west), and Go's tz database, which the ticker reads the hours in, has neither.
-- Kept as rows, not looked up in pg_timezone_names, which computes every zone's offset
-- on each scan (30 ms).
CREATE TABLE time_zones (name text PRIMARY KEY);
INSERT INTO time_zones (name)
SELECT name FROM pg_timezone_names
WHERE name NOT LIKE 'posix/%' AND name NOT LIKE 'right/%' AND name NOT IN ('localtime', 'posixrules', 'Factory')
ON CONFLICT DO NOTHING;

-- Every firm with the zone its jobs use: its own (own), else fallback (JOBS_TIMEZONE).
-- A plain SQL function, so the planner inlines it and a run for a few firms reads
-- those firms only.
-- +goose StatementBegin
CREATE FUNCTION firm_zones(fallback text) RETURNS TABLE (tenant_id uuid, zone text, own boolean)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT t.id, coalesce(z.name, fallback), z.name IS NOT NULL
    FROM tenants t
    LEFT JOIN time_zones z ON z.name = t.timezone
$$;
-- +goose StatementEnd

-- to_char of an instant in a zone, abbreviation (TZ) included, whatever the session's
-- time zone: "Tue 10 Mar 2026, 10:30 IST" for one firm and "..., 09:00 +04" for the
-- next, in one statement. The SET clause puts the session's zone back on return.
-- +goose StatementBegin
CREATE FUNCTION to_char_in(ts timestamptz, zone text, fmt text) RETURNS text
LANGUAGE plpgsql STABLE PARALLEL RESTRICTED SET "TimeZone" FROM CURRENT AS $$
BEGIN
    PERFORM set_config('TimeZone', zone, true);
    RETURN to_char(ts, fmt);
END
$$;
-- +goose StatementEnd

-- The firms whose own zone is unknown, and since when: the SLA check reports a firm
-- once when its zone becomes unknown (its jobs then use JOBS_TIMEZONE) and once when it
-- is known again, not on every run.
CREATE TABLE tenant_zone_fallbacks (
    tenant_id uuid PRIMARY KEY REFERENCES tenants(id) ON DELETE CASCADE,
    timezone  text NOT NULL,
    since     timestamptz NOT NULL
);

-- The ticker reads the firms' zones once and again when one changes: it listens.
-- +goose StatementBegin
CREATE FUNCTION notify_firm_zones() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('gstjobs_firm_zones', '');
    RETURN NULL;
END
$$;
-- +goose StatementEnd
CREATE TRIGGER tenants_zones_changed
AFTER INSERT OR DELETE OR UPDATE OF timezone OR TRUNCATE ON tenants
FOR EACH STATEMENT EXECUTE FUNCTION notify_firm_zones();

-- +goose Down
DROP TRIGGER tenants_zones_changed ON tenants;
DROP FUNCTION notify_firm_zones();
DROP TABLE tenant_zone_fallbacks;
DROP FUNCTION to_char_in(timestamptz, text, text);
DROP FUNCTION firm_zones(text);
DROP TABLE time_zones;
