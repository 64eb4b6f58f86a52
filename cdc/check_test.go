package cdc_test

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/walcast/walcast/cdc"
	"github.com/walcast/walcast/cdc/pgtest"
	wsql "github.com/walcast/walcast/sql"
)

const checkSchema = `
CREATE TABLE products (id bigint PRIMARY KEY, name text);
CREATE TABLE variants (id bigint PRIMARY KEY, product_id bigint, name text);
CREATE TABLE inventory (variant_id bigint PRIMARY KEY, quantity int, reserved int, low_stock_threshold int);
CREATE TABLE orders (id bigint PRIMARY KEY, status text);
`

func connect(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { conn.Close(t.Context()) })
	return conn
}

func find(r cdc.CheckReport, name string) (cdc.CheckResult, bool) {
	for _, c := range r {
		if c.Name == name {
			return c, true
		}
	}
	return cdc.CheckResult{}, false
}

func TestCheck(t *testing.T) {
	t.Run("ReplicaLevelAndNoReplicationRole", func(t *testing.T) {
		pg := pgtest.New(t, pgtest.Options{WalLevel: "replica"})
		ctx := t.Context()
		if _, err := pg.Psql(ctx, "postgres", checkSchema+`CREATE ROLE app LOGIN;`); err != nil {
			t.Fatal(err)
		}
		conn := connect(t, strings.Replace(pg.DSN("postgres"), "user=postgres", "user=app", 1))
		rep, err := cdc.Check(ctx, conn, cdc.CheckConfig{})
		if err != nil {
			t.Fatalf("Check: %v", err)
		}
		t.Logf("report:\n%s", cdc.FormatCheckReport(rep))
		if !rep.Failed() {
			t.Fatalf("Failed() = false, want true")
		}
		for name, want := range map[string]string{
			"wal_level":                      "ALTER SYSTEM SET wal_level = logical",
			"replication":                    "ALTER ROLE app WITH REPLICATION",
			"publication":                    "CREATE PUBLICATION walcast FOR TABLE public.orders, public.inventory",
			"slot":                           "pg_create_logical_replication_slot('walcast', 'pgoutput')",
			"replica_identity:public.orders": "ALTER TABLE public.orders REPLICA IDENTITY FULL",
		} {
			c, ok := find(rep, name)
			if !ok || c.Severity != cdc.CheckFail {
				t.Errorf("finding %s = %+v (found %v), want FAIL", name, c, ok)
				continue
			}
			if !strings.Contains(c.Fix, want) {
				t.Errorf("finding %s fix = %q, want it to contain %q", name, c.Fix, want)
			}
		}
		if c, _ := find(rep, "slot"); c.Code != cdc.CheckSlotMissing {
			t.Errorf("missing slot's code = %q, want %q", c.Code, cdc.CheckSlotMissing)
		}
	})
	t.Run("Healthy", func(t *testing.T) {
		pg := pgtest.New(t, pgtest.Options{Settings: []string{"max_slot_wal_keep_size = 1GB"}})
		ctx := t.Context()
		setup := checkSchema + `
ALTER TABLE orders REPLICA IDENTITY FULL;
ALTER TABLE inventory REPLICA IDENTITY FULL;
CREATE PUBLICATION walcast FOR TABLE orders, inventory, variants, products;`
		if _, err := pg.Psql(ctx, "postgres", setup); err != nil {
			t.Fatal(err)
		}
		if _, err := pg.Psql(ctx, "postgres", `SELECT pg_create_logical_replication_slot('walcast', 'pgoutput')`); err != nil {
			t.Fatal(err)
		}
		conn := connect(t, pg.DSN("postgres"))
		rep, err := cdc.Check(ctx, conn, cdc.CheckConfig{})
		if err != nil {
			t.Fatalf("Check: %v", err)
		}
		if c, _ := find(rep, "sql_api"); c.Severity != cdc.CheckWarn {
			t.Errorf("sql_api before the walcast schema = %+v, want warn", c)
		}
		if err := wsql.Migrate(ctx, conn, wsql.Options{}); err != nil {
			t.Fatalf("sql.Migrate: %v", err)
		}
		rep, err = cdc.Check(ctx, conn, cdc.CheckConfig{})
		if err != nil {
			t.Fatalf("Check: %v", err)
		}
		var num int
		if err := conn.QueryRow(ctx, "SELECT current_setting('server_version_num')::int").Scan(&num); err != nil {
			t.Fatal(err)
		}
		if num >= 170000 {
			// The slot was made without failover and no standby slot is
			// named: both are warnings with their fix, then fixed.
			for name, want := range map[string]string{
				"failover_slot":              "ALTER_REPLICATION_SLOT walcast (FAILOVER true)",
				"synchronized_standby_slots": "ALTER SYSTEM SET synchronized_standby_slots",
			} {
				if c, _ := find(rep, name); c.Severity != cdc.CheckWarn || !strings.Contains(c.Fix, want) {
					t.Errorf("finding %s = %+v, want warn with fix containing %q", name, c, want)
				}
			}
			if _, err := pg.Psql(ctx, "postgres", `SELECT pg_drop_replication_slot('walcast');
SELECT pg_create_logical_replication_slot('walcast', 'pgoutput', false, false, true);
SELECT pg_create_physical_replication_slot('standby1');`); err != nil {
				t.Fatal(err)
			}
			if _, err := pg.Psql(ctx, "postgres", `ALTER SYSTEM SET synchronized_standby_slots = 'standby1'`); err != nil {
				t.Fatal(err)
			}
			if _, err := pg.Psql(ctx, "postgres", `SELECT pg_reload_conf()`); err != nil {
				t.Fatal(err)
			}
			// The reload is asynchronous: wait (bounded) until a fresh
			// session sees the setting.
			deadline := time.Now().Add(20 * time.Second)
			for {
				conn = connect(t, pg.DSN("postgres"))
				var v string
				if err := conn.QueryRow(ctx, "SHOW synchronized_standby_slots").Scan(&v); err != nil {
					t.Fatal(err)
				}
				if v == "standby1" {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("synchronized_standby_slots = %q 20s after reload", v)
				}
				time.Sleep(20 * time.Millisecond)
			}
		} else if c, _ := find(rep, "failover"); c.Severity != cdc.CheckOK {
			t.Errorf("failover finding before 17 = %+v, want ok", c)
		}
		rep, err = cdc.Check(ctx, conn, cdc.CheckConfig{})
		if err != nil {
			t.Fatalf("Check: %v", err)
		}
		if p := rep.Problems(); len(p) > 0 {
			t.Errorf("Problems() = %d findings, want none:\n%s", len(p), cdc.FormatCheckReport(p))
		}
	})
	t.Run("MissingTableAndMembership", func(t *testing.T) {
		pg := pgtest.New(t, pgtest.Options{})
		ctx := t.Context()
		setup := `CREATE TABLE orders (id bigint PRIMARY KEY, status text);
CREATE PUBLICATION walcast FOR TABLE orders;`
		if _, err := pg.Psql(ctx, "postgres", setup); err != nil {
			t.Fatal(err)
		}
		if _, err := pg.Psql(ctx, "postgres", `SELECT pg_create_logical_replication_slot('walcast', 'test_decoding')`); err != nil {
			t.Fatal(err)
		}
		rep, err := cdc.Check(ctx, connect(t, pg.DSN("postgres")), cdc.CheckConfig{
			Tables: []cdc.CheckTable{{Name: "orders", NeedFull: true}, {Name: "inventory"}},
		})
		if err != nil {
			t.Fatalf("Check: %v", err)
		}
		for _, name := range []string{"table:public.inventory", "replica_identity:public.orders", "slot"} {
			if c, ok := find(rep, name); !ok || c.Severity != cdc.CheckFail {
				t.Errorf("finding %s = %+v, want FAIL\n%s", name, c, cdc.FormatCheckReport(rep))
			}
		}
		if c, _ := find(rep, "max_slot_wal_keep_size"); c.Severity != cdc.CheckWarn {
			t.Errorf("max_slot_wal_keep_size severity = %v, want warn", c.Severity)
		}
	})
}

func TestCheckReplicationConn(t *testing.T) {
	pg := pgtest.New(t, pgtest.Options{})
	if r := cdc.CheckReplicationConn(t.Context(), pg.DSN("postgres")); r.Severity != cdc.CheckOK || !strings.Contains(r.Message, "replication connection works") {
		t.Errorf("CheckReplicationConn(pgtest) = %+v, want ok", r)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().(*net.TCPAddr)
	l.Close()
	r := cdc.CheckReplicationConn(t.Context(), fmt.Sprintf("host=127.0.0.1 port=%d user=x dbname=y connect_timeout=2", addr.Port))
	if r.Severity != cdc.CheckFail || r.Name != "replication_conn" || !strings.Contains(r.Fix, "pooler") {
		t.Errorf("CheckReplicationConn(closed port) = %+v, want FAIL naming the pooler fix", r)
	}
}

// TestCheck_Standby: pointed at a streaming standby, check reports what the
// standby lacks to carry the slot through a promotion (17+), and ok once
// slot synchronisation is on and the slot arrived; before 17 a standby is a
// FAIL (walcast streams from the primary).
func TestCheck_Standby(t *testing.T) {
	ctx := t.Context()
	pg := pgtest.New(t, pgtest.Options{})
	if _, err := pg.Psql(ctx, "postgres", checkSchema+`CREATE PUBLICATION walcast FOR ALL TABLES;`); err != nil {
		t.Fatal(err)
	}
	pconn := connect(t, pg.DSN("postgres"))
	if err := wsql.EnsureSlot(ctx, pconn, "walcast"); err != nil {
		t.Fatal(err)
	}
	sb, err := pg.StartStandby(ctx, pgtest.StandbyOptions{Slot: "standby1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sb.Stop() })
	rep, err := cdc.Check(ctx, connect(t, sb.DSN("postgres")), cdc.CheckConfig{})
	if err != nil {
		t.Fatalf("Check on the standby: %v", err)
	}
	t.Logf("standby report:\n%s", cdc.FormatCheckReport(rep))
	var num int
	if err := pconn.QueryRow(ctx, "SELECT current_setting('server_version_num')::int").Scan(&num); err != nil {
		t.Fatal(err)
	}
	if num < 170000 {
		if c, _ := find(rep, "standby"); c.Severity != cdc.CheckFail {
			t.Errorf("standby finding before 17 = %+v, want FAIL", c)
		}
		return
	}
	for name, want := range map[string]string{
		"sync_replication_slots": "ALTER SYSTEM SET sync_replication_slots = on",
		"hot_standby_feedback":   "ALTER SYSTEM SET hot_standby_feedback = on",
		"slot_synced":            "wait for the standby to sync",
	} {
		if c, _ := find(rep, name); c.Severity != cdc.CheckWarn || !strings.Contains(c.Fix, want) {
			t.Errorf("finding %s = %+v, want warn with fix containing %q", name, c, want)
		}
	}
	for _, name := range []string{"primary_slot_name", "primary_conninfo"} {
		if c, _ := find(rep, name); c.Severity != cdc.CheckOK {
			t.Errorf("finding %s = %+v, want ok", name, c)
		}
	}
	for _, s := range []string{`ALTER SYSTEM SET sync_replication_slots = on`, `ALTER SYSTEM SET hot_standby_feedback = on`, `SELECT pg_reload_conf()`} {
		if _, err := sb.Psql(ctx, "postgres", s); err != nil {
			t.Fatal(err)
		}
	}
	// The slot sync worker starts after the reload and copies the slot, but
	// keeps it temporary while the primary's slot needs WAL older than the
	// standby's backup (nothing has advanced it): a promotion would drop it,
	// so check must not call it synced.
	deadline := time.Now().Add(60 * time.Second)
	for {
		var temporary bool
		err := connect(t, sb.DSN("postgres")).QueryRow(ctx, "SELECT temporary FROM pg_replication_slots WHERE slot_name = 'walcast' AND synced").Scan(&temporary)
		if err == nil && temporary {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no temporary synced slot on the standby 60s after enabling slot sync (err %v, temporary %v)", err, temporary)
		}
		time.Sleep(100 * time.Millisecond)
	}
	rep, err = cdc.Check(ctx, connect(t, sb.DSN("postgres")), cdc.CheckConfig{})
	if err != nil {
		t.Fatalf("Check on the standby: %v", err)
	}
	if c, _ := find(rep, "slot_synced"); c.Severity != cdc.CheckWarn || !strings.Contains(c.Message, "temporary") {
		t.Errorf("slot_synced with a temporary synced slot = %+v, want warn naming it temporary", c)
	}
	// Advance the primary's slot (as a running walcast does) until the
	// standby persists its copy (bounded).
	deadline = time.Now().Add(60 * time.Second)
	for {
		if _, err := pconn.Exec(ctx, "SELECT pg_replication_slot_advance('walcast', pg_current_wal_lsn())"); err != nil {
			t.Fatal(err)
		}
		rep, err = cdc.Check(ctx, connect(t, sb.DSN("postgres")), cdc.CheckConfig{})
		if err != nil {
			t.Fatalf("Check on the standby: %v", err)
		}
		if len(rep.Problems()) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("standby still not ready 60s after enabling slot sync:\n%s", cdc.FormatCheckReport(rep.Problems()))
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("ready standby report:\n%s", cdc.FormatCheckReport(rep))
}

// TestCheck_EmitKey: sql_api warns when walcast.emit does not sign (an
// older schema) and when the connected role may not read walcast.emit_key,
// each with its fix: walcast would drop every event from SQL; and when
// walcast.sessions lacks the owner column of recovery sessions.
func TestCheck_EmitKey(t *testing.T) {
	pg := pgtest.New(t, pgtest.Options{})
	ctx := t.Context()
	conn := connect(t, pg.DSN("postgres"))
	if err := wsql.Migrate(ctx, conn, wsql.Options{Demo: true}); err != nil {
		t.Fatal(err)
	}
	check := func(c *pgx.Conn) cdc.CheckResult {
		t.Helper()
		rep, err := cdc.Check(ctx, c, cdc.CheckConfig{})
		if err != nil {
			t.Fatalf("Check: %v", err)
		}
		r, _ := find(rep, "sql_api")
		return r
	}
	if r := check(conn); r.Severity != cdc.CheckOK {
		t.Errorf("sql_api after migrate = %+v, want ok", r)
	}
	if _, err := pg.Psql(ctx, "postgres", `CREATE ROLE "walcast app" LOGIN REPLICATION`); err != nil {
		t.Fatal(err)
	}
	other := connect(t, strings.Replace(pg.DSN("postgres"), "user=postgres", "user='walcast app'", 1))
	if r := check(other); r.Severity != cdc.CheckWarn || r.Fix != `GRANT SELECT ON walcast.emit_key TO "walcast app";` {
		t.Errorf("sql_api for a role without SELECT on the key = %+v, want warn with the GRANT", r)
	}
	if _, err := pg.Psql(ctx, "postgres", `GRANT SELECT ON walcast.emit_key TO "walcast app"`); err != nil {
		t.Fatal(err)
	}
	if r := check(other); r.Severity != cdc.CheckOK {
		t.Errorf("sql_api after the GRANT = %+v, want ok", r)
	}
	if _, err := pg.Psql(ctx, "postgres", `ALTER FUNCTION walcast.emit(text, text, jsonb) SECURITY INVOKER`); err != nil {
		t.Fatal(err)
	}
	if r := check(conn); r.Severity != cdc.CheckWarn || r.Fix != "walcast migrate" {
		t.Errorf("sql_api with an unsigned walcast.emit = %+v, want warn, fix walcast migrate", r)
	}
	if _, err := pg.Psql(ctx, "postgres", `ALTER FUNCTION walcast.emit(text, text, jsonb) SECURITY DEFINER;
		ALTER TABLE walcast.sessions DROP COLUMN owner`); err != nil {
		t.Fatal(err)
	}
	if r := check(conn); r.Severity != cdc.CheckWarn || r.Fix != "walcast migrate" || !strings.Contains(r.Message, "walcast.sessions") {
		t.Errorf("sql_api with walcast.sessions of an older migrate = %+v, want warn, fix walcast migrate", r)
	}
	if err := wsql.Migrate(ctx, conn, wsql.Options{}); err != nil {
		t.Fatal(err)
	}
	if r := check(conn); r.Severity != cdc.CheckOK {
		t.Errorf("sql_api after migrate again = %+v, want ok", r)
	}
}
