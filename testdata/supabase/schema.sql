-- A Supabase-shaped database: the anon and authenticated roles, auth.uid()
-- reading request.jwt.claims as Supabase defines it, and row-level security
-- on orders. walcast authorizes subscribe:order through these policies.
CREATE ROLE anon NOLOGIN NOINHERIT;
CREATE ROLE authenticated NOLOGIN NOINHERIT;
GRANT authenticated TO CURRENT_USER; -- walcast's role may SET ROLE authenticated

CREATE SCHEMA auth;
GRANT USAGE ON SCHEMA auth TO anon, authenticated;
CREATE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE AS $$
  SELECT coalesce(
    nullif(current_setting('request.jwt.claim.sub', true), ''),
    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
  )::uuid
$$;

CREATE TABLE public.orders (
  id              uuid PRIMARY KEY,
  order_number    text NOT NULL,
  user_id         uuid NOT NULL,
  status          text NOT NULL DEFAULT 'pending',
  tracking_number text
);
GRANT SELECT ON public.orders TO authenticated;
ALTER TABLE public.orders ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_orders ON public.orders FOR SELECT TO authenticated USING (user_id = auth.uid());
