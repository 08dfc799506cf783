-- +goose Up
-- Whether PostgreSQL accepts name in AT TIME ZONE. tenants.timezone is typed by
-- people; a job formatting times in a firm's zone checks it first, so one firm's typo
-- is reported instead of failing the statement for every firm. Much cheaper than a
-- lookup in pg_timezone_names, which computes every zone's offset on each scan.
-- +goose StatementBegin
CREATE FUNCTION valid_timezone(name text) RETURNS boolean
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
BEGIN
    PERFORM now() AT TIME ZONE name;
    RETURN name IS NOT NULL;
EXCEPTION WHEN data_exception THEN
    RETURN false;
END
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION valid_timezone(text);
