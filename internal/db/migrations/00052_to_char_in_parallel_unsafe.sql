-- +goose Up
-- to_char_in sets the TimeZone parameter for its call, which PostgreSQL refuses inside
-- any parallel operation, the leader's part included ("cannot set parameters during a
-- parallel operation"). PARALLEL RESTRICTED let the planner choose a parallel plan for a
-- statement that calls it (the reminders' and the deadline alerts' on large data), and
-- the run failed. PARALLEL UNSAFE keeps such a statement serial.
ALTER FUNCTION to_char_in(timestamptz, text, text) PARALLEL UNSAFE;

-- +goose Down
ALTER FUNCTION to_char_in(timestamptz, text, text) PARALLEL RESTRICTED;
