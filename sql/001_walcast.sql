-- walcast's own objects: the walcast schema with emit, notify and heartbeat.
-- Idempotent: every statement can run again without error or side effect.
--
-- Events travel as transactional logical decoding messages
-- (pg_logical_emit_message(true, ...)): they are decoded only if the calling
-- transaction commits, in commit order, and they leave no rows behind.

CREATE SCHEMA IF NOT EXISTS walcast;

COMMENT ON SCHEMA walcast IS 'walcast: push committed changes to Socket.IO clients';

-- Any role may call the functions, like pg_logical_emit_message itself (which
-- PUBLIC may execute). To restrict who can emit events, revoke EXECUTE on the
-- functions from PUBLIC and grant it to your application roles; migrations
-- do not undo such grants (CREATE OR REPLACE keeps a function's privileges).
GRANT USAGE ON SCHEMA walcast TO PUBLIC;

-- walcast.emit sends event (with payload as its single argument) to room.
-- Message prefix 'walcast', content {"room":…,"event":…,"payload":…}.
CREATE OR REPLACE FUNCTION walcast.emit(room text, event text, payload jsonb DEFAULT NULL)
RETURNS pg_lsn
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
  IF room IS NULL OR btrim(room) = '' THEN
    RAISE EXCEPTION 'walcast.emit: room must be a non-empty string'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF event IS NULL OR btrim(event) = '' THEN
    RAISE EXCEPTION 'walcast.emit: event must be a non-empty string'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  RETURN pg_logical_emit_message(
    true, 'walcast',
    jsonb_build_object('room', room, 'event', event, 'payload', payload)::text);
END
$fn$;

COMMENT ON FUNCTION walcast.emit(text, text, jsonb) IS
  'Transactionally emit a Socket.IO event to a walcast room (delivered only on commit)';

-- walcast.notify sends a "notification" {title, message, type} to user:{user_id}.
CREATE OR REPLACE FUNCTION walcast.notify(user_id text, title text, message text, type text DEFAULT 'info')
RETURNS pg_lsn
LANGUAGE sql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
  SELECT walcast.emit('user:' || user_id, 'notification',
    jsonb_build_object('title', title, 'message', message, 'type', type));
$fn$;

CREATE OR REPLACE FUNCTION walcast.notify(user_id uuid, title text, message text, type text DEFAULT 'info')
RETURNS pg_lsn
LANGUAGE sql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
  SELECT walcast.notify(user_id::text, title, message, type);
$fn$;

-- walcast.heartbeat writes a transactional message with prefix
-- 'walcast.heartbeat' (content: the current time). It produces no event; its
-- commit gives the reader a position it may acknowledge on an idle database.
CREATE OR REPLACE FUNCTION walcast.heartbeat()
RETURNS pg_lsn
LANGUAGE sql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
  SELECT pg_logical_emit_message(true, 'walcast.heartbeat', now()::text);
$fn$;

-- walcast.sessions keeps the Socket.IO sessions of connected and recently
-- disconnected sockets (connection state recovery), so that a client can
-- resume its session, with the events it missed, after walcast restarts or
-- crashes. walcast serve writes it in batches (one multi-row statement per
-- ~50 ms at most) and deletes rows older than the recovery window. A row
-- whose node stopped heartbeating (walcast.nodes) counts as disconnected at
-- the node's last heartbeat.
CREATE TABLE IF NOT EXISTS walcast.sessions (
  pid        text PRIMARY KEY,
  sid        text NOT NULL,
  namespace  text NOT NULL,
  rooms      jsonb NOT NULL DEFAULT '[]',
  node       text NOT NULL,
  connected  boolean NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE walcast.sessions IS
  'walcast: Socket.IO sessions for connection state recovery across restarts (written by walcast serve)';

-- walcast.nodes: each running walcast serve process and its last heartbeat.
CREATE TABLE IF NOT EXISTS walcast.nodes (
  node     text PRIMARY KEY,
  alive_at timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE walcast.nodes IS
  'walcast: running walcast serve processes (heartbeat once a second), for walcast.sessions';
