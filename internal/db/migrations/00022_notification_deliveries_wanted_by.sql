-- +goose Up
-- The run that last asked for a delivery. A run sends only the e-mails it asked for
-- itself: a reminder whose hearing was cancelled, moved or reassigned since an
-- earlier run queued it is no longer asked for, and so is not sent late.
ALTER TABLE notification_deliveries ADD COLUMN wanted_by text;
DROP INDEX notification_deliveries_unsent;
CREATE INDEX notification_deliveries_unsent ON notification_deliveries (source, wanted_by)
    WHERE status <> 'sent';

-- +goose Down
DROP INDEX notification_deliveries_unsent;
CREATE INDEX notification_deliveries_unsent ON notification_deliveries (source, channel, not_after)
    WHERE status <> 'sent';
ALTER TABLE notification_deliveries DROP COLUMN wanted_by;
