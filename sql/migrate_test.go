package sql_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/walcast/walcast/cdc"
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
	t.Run("EmitKey", func(t *testing.T) {
		// One key, kept by later migrations; walcast.emit signs with it for
		// its transaction (HMAC-SHA256 of "xid:body", as cdc verifies).
		var n int
		var key []byte
		if err := conn.QueryRow(ctx, "select count(*) over (), key from walcast.emit_key").Scan(&n, &key); err != nil || n != 1 || len(key) != 32 {
			t.Fatalf("walcast.emit_key: %d rows, key of %d bytes, %v; want 1 row of 32", n, len(key), err)
		}
		if err := walsql.Migrate(ctx, conn, opts); err != nil {
			t.Fatal(err)
		}
		var again []byte
		if err := conn.QueryRow(ctx, "select key from walcast.emit_key").Scan(&again); err != nil || !bytes.Equal(again, key) {
			t.Errorf("key after another migration changed (%v)", err)
		}
		k, err := cdc.NewEmitKey(key)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Exec(ctx, "select pg_create_logical_replication_slot('emitkey', 'test_decoding')"); err != nil {
			t.Fatal(err)
		}
		defer conn.Exec(ctx, "select pg_drop_replication_slot('emitkey')")
		tx, err := conn.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var xid uint32
		if err := tx.QueryRow(ctx, "select walcast.emit('r', 'e', '{\"a\": \"\u00e9\"}'), pg_current_xact_id()::xid::text::int8").Scan(new(string), &xid); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		var data string
		if err := conn.QueryRow(ctx, "select data from pg_logical_slot_get_changes('emitkey', NULL, NULL) where data like 'message:%'").Scan(&data); err != nil {
			t.Fatal(err)
		}
		_, content, _ := strings.Cut(data, "content:")
		body, err := k.VerifyEmit(xid, []byte(content))
		if want := `{"room": "r", "event": "e", "payload": {"a": "é"}}`; err != nil || string(body) != want {
			t.Errorf("VerifyEmit(%d, %q) = %q, %v; want %q", xid, content, body, err, want)
		}
		if _, err := k.VerifyEmit(xid+1, []byte(content)); err == nil {
			t.Error("the signature verified for another transaction")
		}
	})
	t.Run("EmitKeyPrivate", func(t *testing.T) {
		out, err := c.Psql(ctx, "shop", "CREATE ROLE nosy LOGIN; SET ROLE nosy; SELECT key FROM walcast.emit_key")
		if err == nil || !strings.Contains(out+err.Error(), "permission denied") {
			t.Errorf("walcast.emit_key as a plain role: %q, %v; want permission denied", out, err)
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
