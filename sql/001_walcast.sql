-- walcast's own objects: the walcast schema with emit, notify and heartbeat.
-- Idempotent: every statement can run again without error or side effect.
--
-- Events travel as transactional logical decoding messages
-- (pg_logical_emit_message(true, ...)): they are decoded only if the calling
-- transaction commits, in commit order, and they leave no rows behind.

CREATE SCHEMA IF NOT EXISTS walcast;

COMMENT ON SCHEMA walcast IS 'walcast: push committed changes to Socket.IO clients';

-- Who may emit. walcast delivers a message with prefix 'walcast' only if it
-- carries a valid signature, and only walcast.emit can sign: it is SECURITY
-- DEFINER and reads the key from walcast.emit_key, which only the owner of
-- these objects (the role that ran walcast migrate) and the roles it grants
-- SELECT to can read. A direct pg_logical_emit_message(true, 'walcast', …),
-- which any login may call, is dropped by walcast as forged. So EXECUTE on
-- walcast.emit and walcast.notify is what decides who may emit. New functions
-- may be executed by PUBLIC; to restrict them, revoke EXECUTE from PUBLIC and
-- grant it to your application roles. Migrations do not undo such grants
-- (CREATE OR REPLACE keeps a function's privileges).
GRANT USAGE ON SCHEMA walcast TO PUBLIC;

-- walcast.emit_key holds one random 32-byte key (and its HMAC pads, derived
-- from it once). walcast serve reads the key at start, so its database role
-- must own the table or have SELECT on it. To rotate the key: delete the row,
-- run walcast migrate, restart walcast (messages signed with the old key that
-- walcast has not read yet are then dropped).
CREATE TABLE IF NOT EXISTS walcast.emit_key (
  id         boolean PRIMARY KEY DEFAULT true CHECK (id),
  key        bytea NOT NULL CHECK (length(key) = 32),
  ipad       bytea NOT NULL CHECK (length(ipad) = 64),
  opad       bytea NOT NULL CHECK (length(opad) = 64),
  created_at timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE walcast.emit_key IS
  'walcast: the key walcast.emit signs its messages with (HMAC-SHA256); readable by its owner and walcast serve only';

REVOKE ALL ON walcast.emit_key FROM PUBLIC;

-- The key: sha256 of three gen_random_uuid() values (each 122 bits from the
-- server's strong random source; gen_random_uuid and sha256 are built in, so
-- no extension is needed). ipad and opad are the key, zero-padded to the
-- 64-byte SHA-256 block, XORed with 0x36 and 0x5c: HMAC's inner and outer
-- keys (RFC 2104).
DO $do$
DECLARE
  k bytea;
  i bytea;
  o bytea;
BEGIN
  IF NOT EXISTS (SELECT 1 FROM walcast.emit_key) THEN
    k := sha256(uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid()));
    i := k || decode(repeat('00', 32), 'hex');
    o := i;
    FOR n IN 0..63 LOOP
      i := set_byte(i, n, get_byte(i, n) # 54);
      o := set_byte(o, n, get_byte(o, n) # 92);
    END LOOP;
    INSERT INTO walcast.emit_key (key, ipad, opad) VALUES (k, i, o) ON CONFLICT (id) DO NOTHING;
  END IF;
END
$do$;

-- walcast.emit sends event (with payload as its single argument) to room.
-- Message prefix 'walcast'; content: the lower-case hex HMAC-SHA256 (64
-- characters) of the transaction's xid in decimal, ':' and the body, then
-- the body, {"room":…,"event":…,"payload":…} in UTF-8. The xid binds the
-- signature to its transaction: a signed message copied into another
-- transaction does not verify.
CREATE OR REPLACE FUNCTION walcast.emit(room text, event text, payload jsonb DEFAULT NULL)
RETURNS pg_lsn
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
  body bytea;
  ip bytea;
  op bytea;
BEGIN
  IF room IS NULL OR btrim(room) = '' THEN
    RAISE EXCEPTION 'walcast.emit: room must be a non-empty string'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF event IS NULL OR btrim(event) = '' THEN
    RAISE EXCEPTION 'walcast.emit: event must be a non-empty string'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  SELECT k.ipad, k.opad INTO ip, op FROM walcast.emit_key k;
  IF ip IS NULL THEN
    RAISE EXCEPTION 'walcast.emit: walcast.emit_key is empty; run walcast migrate'
      USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  body := convert_to(jsonb_build_object('room', room, 'event', event, 'payload', payload)::text, 'UTF8');
  RETURN pg_logical_emit_message(true, 'walcast',
    convert_to(encode(sha256(op || sha256(ip || convert_to(pg_current_xact_id()::xid::text || ':', 'UTF8') || body)), 'hex'), 'UTF8')
    || body);
END
$fn$;

COMMENT ON FUNCTION walcast.emit(text, text, jsonb) IS
  'Transactionally emit a Socket.IO event to a walcast room (delivered only on commit)';

-- walcast.notify sends a "notification" {title, message, type} to
-- user:{user_id}. SECURITY DEFINER too, so EXECUTE on walcast.notify alone
-- lets a role send notifications (and nothing else).
CREATE OR REPLACE FUNCTION walcast.notify(user_id text, title text, message text, type text DEFAULT 'info')
RETURNS pg_lsn
LANGUAGE sql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
  SELECT walcast.emit('user:' || user_id, 'notification',
    jsonb_build_object('title', title, 'message', message, 'type', type));
$fn$;

CREATE OR REPLACE FUNCTION walcast.notify(user_id uuid, title text, message text, type text DEFAULT 'info')
RETURNS pg_lsn
LANGUAGE sql
VOLATILE
SECURITY DEFINER
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

-- owner: the user the session belongs to (the token's subject); only that
-- user may recover it. '' for rows written before the column existed, which
-- nobody may recover.
ALTER TABLE walcast.sessions ADD COLUMN IF NOT EXISTS owner text NOT NULL DEFAULT '';

COMMENT ON TABLE walcast.sessions IS
  'walcast: Socket.IO sessions for connection state recovery across restarts (written by walcast serve)';

-- walcast.nodes: each running walcast serve process and its last heartbeat.
CREATE TABLE IF NOT EXISTS walcast.nodes (
  node     text PRIMARY KEY,
  alive_at timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE walcast.nodes IS
  'walcast: running walcast serve processes (heartbeat once a second), for walcast.sessions';

-- walcast.policy_changed tells walcast that a row-level security policy or a
-- privilege changed (CREATE/ALTER/DROP POLICY, GRANT, REVOKE): DDL is not in
-- logical replication, so an event trigger writes a transactional message
-- with prefix 'walcast.policy' (content: the command tag), decoded at the
-- DDL's commit. walcast then checks the subscriptions that rest on an "rls"
-- rule again. Creating an event trigger needs a superuser: without one the
-- trigger is skipped with a notice, and WALCAST_RLS_RECHECK_INTERVAL is the
-- fallback (a periodic re-check). Any login can write such a message; it only
-- makes walcast re-check (at most once a second), never grants anything.
CREATE OR REPLACE FUNCTION walcast.policy_changed()
RETURNS event_trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
  PERFORM pg_logical_emit_message(true, 'walcast.policy', tg_tag);
END;
$fn$;

DO $do$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_event_trigger WHERE evtname = 'walcast_policy_changed') THEN
    CREATE EVENT TRIGGER walcast_policy_changed ON ddl_command_end
      WHEN TAG IN ('CREATE POLICY', 'ALTER POLICY', 'DROP POLICY', 'GRANT', 'REVOKE')
      EXECUTE FUNCTION walcast.policy_changed();
  END IF;
EXCEPTION WHEN insufficient_privilege THEN
  RAISE NOTICE 'walcast: no event trigger for policy changes (needs a superuser); set WALCAST_RLS_RECHECK_INTERVAL to re-check rls subscriptions periodically';
END;
$do$;
