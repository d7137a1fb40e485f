-- The W3C trace context of the work that wrote each event (the CloudEvents distributed-tracing extension:
-- `traceparent`, `tracestate`), so that the event carries it when the outbox publishes it, however late, and
-- the function that receives it continues the same trace. NULL when tracing is off (docs/events.md).
ALTER TABLE outbox ADD COLUMN traceparent text, ADD COLUMN tracestate text;
