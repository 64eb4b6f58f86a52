package sql_test

import (
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/walcast/walcast/cdc/pgtest"
	walsql "github.com/walcast/walcast/sql"
)

func connect(t *testing.T, c *pgtest.Cluster, db string) *pgx.Conn {
	t.Helper()
	if err := c.CreateDatabase(t.Context(), db); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(t.Context(), c.DSN(db))
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { conn.Close(t.Context()) })
	return conn
}

func TestMigrate(t *testing.T) {
	c := pgtest.New(t, pgtest.Options{})
	conn := connect(t, c, "shop")
	ctx := t.Context()
	opts := walsql.Options{Demo: true, Slot: "walcast", Publication: "walcast"}
	for i := range 2 {
		if err := walsql.Migrate(ctx, conn, opts); err != nil {
			t.Fatalf("Migrate run %d: %v", i+1, err)
		}
	}

	t.Run("SeedOnce", func(t *testing.T) {
		var n int
		if err := conn.QueryRow(ctx, "select count(*) from orders").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 3 {
			t.Errorf("orders after two migrations = %d, want 3", n)
		}
	})
	t.Run("Publication", func(t *testing.T) {
		rows, _ := conn.Query(ctx, "select schemaname||'.'||tablename from pg_publication_tables where pubname='walcast' order by 1")
		got, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		// profiles is optional: published because the demo schema has it.
		want := "public.inventory,public.orders,public.products,public.profiles,public.variants"
		if strings.Join(got, ",") != want {
			t.Errorf("publication tables = %v, want %s", got, want)
		}
	})
	t.Run("ReplicaIdentity", func(t *testing.T) {
		for _, tbl := range []string{"orders", "inventory"} {
			var ri string
			if err := conn.QueryRow(ctx, "select relreplident::text from pg_class where oid = $1::regclass", tbl).Scan(&ri); err != nil {
				t.Fatal(err)
			}
			if ri != "f" {
				t.Errorf("%s replica identity = %q, want f", tbl, ri)
			}
		}
	})
	t.Run("Slot", func(t *testing.T) {
		var plugin string
		if err := conn.QueryRow(ctx, "select plugin from pg_replication_slots where slot_name='walcast'").Scan(&plugin); err != nil {
			t.Fatal(err)
		}
		if plugin != "pgoutput" {
			t.Errorf("slot plugin = %q, want pgoutput", plugin)
		}
		var num int
		if err := conn.QueryRow(ctx, "select current_setting('server_version_num')::int").Scan(&num); err != nil {
			t.Fatal(err)
		}
		if num >= 170000 { // failover slots exist from 17 on
			var failover bool
			if err := conn.QueryRow(ctx, "select failover from pg_replication_slots where slot_name='walcast'").Scan(&failover); err != nil {
				t.Fatal(err)
			}
			if !failover {
				t.Errorf("slot on server %d has failover off, want on", num)
			}
		}
	})
	t.Run("AddTable", func(t *testing.T) {
		if err := walsql.Migrate(ctx, conn, walsql.Options{Tables: append(walsql.DefaultTables, "profiles"), FullIdentity: []string{"profiles"}}); err != nil {
			t.Fatal(err)
		}
		var ri string
		if err := conn.QueryRow(ctx, "select relreplident::text from pg_class where oid = 'profiles'::regclass").Scan(&ri); err != nil || ri != "f" {
			t.Errorf("profiles replica identity = %q, %v; want f", ri, err)
		}
		if err := walsql.Migrate(ctx, conn, walsql.Options{FullIdentity: []string{"nosuch"}}); err == nil || !strings.Contains(err.Error(), "nosuch") {
			t.Errorf("FullIdentity on a missing table: err = %v, want one naming it", err)
		}
		var in bool
		if err := conn.QueryRow(ctx, "select exists(select 1 from pg_publication_tables where pubname='walcast' and tablename='profiles')").Scan(&in); err != nil {
			t.Fatal(err)
		}
		if !in {
			t.Error("profiles not added to an existing publication")
		}
	})
	t.Run("EmitMessages", func(t *testing.T) {
		if _, err := conn.Exec(ctx, "set synchronous_commit = on; select walcast.emit('room:1','custom', '{\"a\":1}'); select walcast.notify('00000000-0000-4000-8000-000000000101'::uuid, 'Hi', 'Shipped', 'info'); select walcast.heartbeat()"); err != nil {
			t.Fatal(err)
		}
		var data []byte
		err := conn.QueryRow(ctx, `select string_agg(data, '\x00'::bytea) from pg_logical_slot_peek_binary_changes('walcast', NULL, NULL,
			'proto_version','1','publication_names','walcast','messages','true')`).Scan(&data)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{
			`{"room": "room:1", "event": "custom", "payload": {"a": 1}}`,
			`"room": "user:00000000-0000-4000-8000-000000000101"`,
			`"payload": {"type": "info", "title": "Hi", "message": "Shipped"}`,
			"walcast.heartbeat",
		} {
			if !strings.Contains(string(data), want) {
				t.Errorf("slot changes lack %q:\n%q", want, data)
			}
		}
	})
	t.Run("OtherRoleMayEmit", func(t *testing.T) {
		out, err := c.Psql(ctx, "shop", "CREATE ROLE app LOGIN; SET ROLE app; SELECT walcast.emit('r', 'e', '{}') IS NOT NULL AS ok")
		if err != nil || !strings.Contains(out, " t") {
			t.Errorf("walcast.emit as a plain role: %q, %v", out, err)
		}
	})
	t.Run("EmitRejectsEmptyRoom", func(t *testing.T) {
		for _, q := range []string{"select walcast.emit('', 'e', null)", "select walcast.emit('r', null, null)"} {
			_, err := conn.Exec(ctx, q)
			if err == nil || !strings.Contains(err.Error(), "must be a non-empty string") {
				t.Errorf("%s: err = %v, want non-empty string error", q, err)
			}
		}
	})
}

func TestMigrate_MissingTable(t *testing.T) {
	c := pgtest.New(t, pgtest.Options{})
	conn := connect(t, c, "empty")
	err := walsql.Migrate(t.Context(), conn, walsql.Options{})
	if err == nil || !strings.Contains(err.Error(), "orders") {
		t.Fatalf("Migrate without demo tables: err = %v, want one naming orders", err)
	}
}

func TestFiles(t *testing.T) {
	if got := walsql.Files(walsql.Options{}); len(got) != 1 || got[0] != walsql.FileWalcast {
		t.Errorf("Files(zero) = %v", got)
	}
	all := walsql.AllFiles()
	if len(all) != 3 {
		t.Errorf("AllFiles = %v, want 3 files", all)
	}
	for _, name := range all {
		if _, err := walsql.File(name); err != nil {
			t.Error(err)
		}
	}
}
