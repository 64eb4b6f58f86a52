package cdc

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Defaults for CheckConfig (the names `walcast migrate` creates).
const (
	checkDefaultSlot        = "walcast"
	checkDefaultPublication = "walcast"
)

// DefaultCheckTables are the tables the built-in seed mapping reads: orders and
// inventory need REPLICA IDENTITY FULL because the mapper compares old and new
// values (status changes, low-stock crossings); variants and products feed its
// lookup caches.
var DefaultCheckTables = []CheckTable{
	{Name: "public.orders", NeedFull: true},
	{Name: "public.inventory", NeedFull: true},
	{Name: "public.variants"},
	{Name: "public.products"},
}

// CheckTable is one table the mapping needs in the publication.
type CheckTable struct {
	Name     string // schema-qualified ("public.orders"); an unqualified name means public
	NeedFull bool   // REPLICA IDENTITY FULL is required (old values are compared)
	// Optional tables are checked only when they exist, and one missing from
	// the publication is a warning that says what is lost (Why).
	Optional bool
	Why      string // what walcast does with the table's changes, for the warning
}

// CheckConfig says what Check inspects. The zero value checks the defaults.
type CheckConfig struct {
	Slot        string       // "" = "walcast"
	Publication string       // "" = "walcast"
	Tables      []CheckTable // nil = DefaultCheckTables
	// MaxRetainedBytes is the WAL a slot may retain before Check warns; 0 = 1 GiB,
	// negative = never warn.
	MaxRetainedBytes int64
}

// Severity grades a CheckResult.
type Severity int

// The severities of a CheckResult.
const (
	CheckOK   Severity = iota // as it should be
	CheckWarn                 // works, but an operator should look
	CheckFail                 // walcast cannot work until it is fixed
)

func (s Severity) String() string {
	switch s {
	case CheckOK:
		return "ok"
	case CheckWarn:
		return "warn"
	case CheckFail:
		return "FAIL"
	}
	return "unknown"
}

// CheckResult is one finding of Check. Fix holds the exact SQL (or command) that
// repairs a problem; it is empty for CheckOK.
type CheckResult struct {
	Name     string // short id: wal_level, replication, publication, table:public.orders, replica_identity:..., slot, slot_wal, failover_slot, ...
	Severity Severity
	Message  string
	Fix      string
	Code     CheckCode // what a caller may act on; "" for most findings
}

// CheckCode names a finding that callers branch on, so that they need not
// read Message.
type CheckCode string

// Codes of CheckResult.
const (
	CheckSlotMissing CheckCode = "slot_missing" // the slot does not exist (a Reader creates it)
	CheckSlotLost    CheckCode = "slot_lost"    // the slot's WAL was removed (a Reader recreates it)
)

// CheckReport is the list of findings, in the order they were checked.
type CheckReport []CheckResult

// Failed reports whether any finding is CheckFail.
func (r CheckReport) Failed() bool {
	for _, c := range r {
		if c.Severity == CheckFail {
			return true
		}
	}
	return false
}

// Problems returns the findings that are not CheckOK.
func (r CheckReport) Problems() CheckReport {
	var out CheckReport
	for _, c := range r {
		if c.Severity != CheckOK {
			out = append(out, c)
		}
	}
	return out
}

// Querier is the part of a pgx connection (or pool) Check uses.
type Querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// Check inspects the database for everything walcast needs: wal_level=logical,
// the REPLICATION privilege of the connected role, the publication and its
// tables, replica identity, and the slot (exists, pgoutput, this database, not
// lost, retained WAL). It runs read-only queries on an ordinary (not
// replication) connection. An error means the checks could not run; problems
// found are findings in the report.
func Check(ctx context.Context, q Querier, cfg CheckConfig) (CheckReport, error) {
	if cfg.Slot == "" {
		cfg.Slot = checkDefaultSlot
	}
	if cfg.Publication == "" {
		cfg.Publication = checkDefaultPublication
	}
	if cfg.Tables == nil {
		cfg.Tables = DefaultCheckTables
	}
	if cfg.MaxRetainedBytes == 0 {
		cfg.MaxRetainedBytes = 1 << 30
	}
	var r CheckReport
	st := &checkState{CheckConfig: cfg}
	if err := q.QueryRow(ctx, "SELECT current_setting('server_version_num')::int, pg_is_in_recovery()").Scan(&st.serverNum, &st.standby); err != nil {
		return r, fmt.Errorf("check server version: %w", err)
	}
	steps := []func(context.Context, Querier, *checkState, *CheckReport) error{
		checkWalLevel, checkReplicationRole, checkPublication, checkTables, checkSlot, checkWalKeep, checkSQLAPI, checkFailover,
	}
	if st.standby {
		// A standby cannot serve walcast; it is checked for what it needs to
		// carry the slot through a promotion.
		steps = []func(context.Context, Querier, *checkState, *CheckReport) error{checkWalLevel, checkStandby}
	}
	for _, step := range steps {
		if err := step(ctx, q, st, &r); err != nil {
			return r, err
		}
	}
	return r, nil
}

// checkState is the config plus what earlier steps found.
type checkState struct {
	CheckConfig
	noPublication bool
	serverNum     int  // server_version_num
	standby       bool // pg_is_in_recovery()
	slotExists    bool // checkSlot found the slot
}

func (r *CheckReport) add(name string, sev Severity, fix, format string, args ...any) {
	*r = append(*r, CheckResult{Name: name, Severity: sev, Message: fmt.Sprintf(format, args...), Fix: fix})
}

func checkWalLevel(ctx context.Context, q Querier, _ *checkState, r *CheckReport) error {
	var level string
	if err := q.QueryRow(ctx, "SHOW wal_level").Scan(&level); err != nil {
		return fmt.Errorf("check wal_level: %w", err)
	}
	if level != "logical" {
		r.add("wal_level", CheckFail,
			"ALTER SYSTEM SET wal_level = logical;  -- then restart Postgres",
			"wal_level is %q; logical replication needs wal_level = logical", level)
		return nil
	}
	r.add("wal_level", CheckOK, "", "wal_level is logical")
	return nil
}

func checkReplicationRole(ctx context.Context, q Querier, _ *checkState, r *CheckReport) error {
	var role string
	var repl, super bool
	err := q.QueryRow(ctx, "SELECT rolname, rolreplication, rolsuper FROM pg_roles WHERE rolname = current_user").Scan(&role, &repl, &super)
	if err != nil {
		return fmt.Errorf("check replication privilege: %w", err)
	}
	if !repl && !super {
		r.add("replication", CheckFail,
			fmt.Sprintf("ALTER ROLE %s WITH REPLICATION;", quoteIdent(role)),
			"role %q has no REPLICATION privilege (needed to stream the slot)", role)
		return nil
	}
	r.add("replication", CheckOK, "", "role %q may replicate", role)
	return nil
}

func checkPublication(ctx context.Context, q Querier, cfg *checkState, r *CheckReport) error {
	var all bool
	err := q.QueryRow(ctx, "SELECT puballtables FROM pg_publication WHERE pubname = $1", cfg.Publication).Scan(&all)
	if errors.Is(err, pgx.ErrNoRows) {
		names := make([]string, len(cfg.Tables))
		for i, t := range cfg.Tables {
			names[i] = qualify(t.Name)
		}
		r.add("publication", CheckFail,
			fmt.Sprintf("CREATE PUBLICATION %s FOR TABLE %s;  -- or run: walcast migrate", quoteIdent(cfg.Publication), strings.Join(names, ", ")),
			"publication %q does not exist", cfg.Publication)
		cfg.noPublication = true
		return nil
	}
	if err != nil {
		return fmt.Errorf("check publication %q: %w", cfg.Publication, err)
	}
	r.add("publication", CheckOK, "", "publication %q exists", cfg.Publication)
	return nil
}

func checkTables(ctx context.Context, q Querier, cfg *checkState, r *CheckReport) error {
	for _, t := range cfg.Tables {
		name := qualify(t.Name)
		schema, table, _ := strings.Cut(name, ".")
		var ident string
		err := q.QueryRow(ctx, `SELECT c.relreplident::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r','p')`, schema, table).Scan(&ident)
		if errors.Is(err, pgx.ErrNoRows) && t.Optional {
			continue
		}
		if errors.Is(err, pgx.ErrNoRows) {
			r.add("table:"+name, CheckFail, "walcast migrate  -- creates the demo schema; or set WALCAST_MAPPING to your tables",
				"table %s does not exist", name)
			continue
		}
		if err != nil {
			return fmt.Errorf("check table %s: %w", name, err)
		}
		var published bool
		err = q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_publication_tables WHERE pubname = $1 AND schemaname = $2 AND tablename = $3)`,
			cfg.Publication, schema, table).Scan(&published)
		if err != nil {
			return fmt.Errorf("check publication membership of %s: %w", name, err)
		}
		switch {
		case cfg.noPublication:
		case !published && t.Optional:
			r.add("publication:"+name, CheckWarn,
				fmt.Sprintf("ALTER PUBLICATION %s ADD TABLE %s;  -- or run: walcast migrate", quoteIdent(cfg.Publication), quoteQualified(schema, table)),
				"table %s is not in publication %q: %s", name, cfg.Publication, t.Why)
		case !published:
			r.add("publication:"+name, CheckFail,
				fmt.Sprintf("ALTER PUBLICATION %s ADD TABLE %s;", quoteIdent(cfg.Publication), quoteQualified(schema, table)),
				"table %s is not in publication %q", name, cfg.Publication)
		default:
			r.add("publication:"+name, CheckOK, "", "table %s is published", name)
		}
		if t.NeedFull && ident != "f" {
			r.add("replica_identity:"+name, CheckFail,
				fmt.Sprintf("ALTER TABLE %s REPLICA IDENTITY FULL;", quoteQualified(schema, table)),
				"table %s has REPLICA IDENTITY %s; the mapper needs old values (FULL)", name, identName(ident))
		} else if t.NeedFull {
			r.add("replica_identity:"+name, CheckOK, "", "table %s has REPLICA IDENTITY FULL", name)
		}
	}
	return nil
}

func checkSlot(ctx context.Context, q Querier, cfg *checkState, r *CheckReport) error {
	var (
		plugin, slotType, walStatus *string
		database                    *string
		active                      bool
		activePID                   *int32
		retained, lag               *int64
		currentDB                   string
	)
	err := q.QueryRow(ctx, `SELECT s.plugin, s.slot_type, s.database::text, s.active, s.active_pid, s.wal_status,
			pg_wal_lsn_diff(pg_current_wal_lsn(), s.restart_lsn)::bigint,
			pg_wal_lsn_diff(pg_current_wal_lsn(), s.confirmed_flush_lsn)::bigint,
			current_database()
		FROM pg_replication_slots s WHERE s.slot_name = $1`, cfg.Slot).
		Scan(&plugin, &slotType, &database, &active, &activePID, &walStatus, &retained, &lag, &currentDB)
	if errors.Is(err, pgx.ErrNoRows) {
		r.add("slot", CheckFail,
			fmt.Sprintf("SELECT pg_create_logical_replication_slot(%s, 'pgoutput');  -- or run: walcast migrate", quoteLiteral(cfg.Slot)),
			"replication slot %q does not exist", cfg.Slot)
		(*r)[len(*r)-1].Code = CheckSlotMissing
		return nil
	}
	if err != nil {
		return fmt.Errorf("check slot %q: %w", cfg.Slot, err)
	}
	cfg.slotExists = true
	recreate := fmt.Sprintf("SELECT pg_drop_replication_slot(%s); SELECT pg_create_logical_replication_slot(%[1]s, 'pgoutput');", quoteLiteral(cfg.Slot))
	switch {
	case deref(slotType) != "logical" || deref(plugin) != "pgoutput":
		r.add("slot", CheckFail, recreate, "slot %q is %s with plugin %q; walcast needs a logical pgoutput slot",
			cfg.Slot, deref(slotType), deref(plugin))
		return nil
	case deref(database) != currentDB:
		r.add("slot", CheckFail, "connect walcast to database "+quoteLiteral(deref(database))+" or create the slot in this one: "+recreate,
			"slot %q belongs to database %q, not %q", cfg.Slot, deref(database), currentDB)
		return nil
	case deref(walStatus) == "lost":
		r.add("slot", CheckFail, recreate+"  -- events committed while the slot was lost are gone; reconcile orders/inventory",
			"slot %q is lost (its WAL was removed, usually past max_slot_wal_keep_size)", cfg.Slot)
		(*r)[len(*r)-1].Code = CheckSlotLost
		return nil
	}
	state := "inactive"
	if active && activePID != nil {
		state = fmt.Sprintf("active (pid %d)", *activePID)
	}
	r.add("slot", CheckOK, "", "slot %q exists, pgoutput, %s, wal_status %s, confirmed lag %s", cfg.Slot, state, deref(walStatus), bytesString(lag))
	switch {
	case deref(walStatus) == "unreserved":
		r.add("slot_wal", CheckWarn, "start walcast (it acknowledges the slot) or raise max_slot_wal_keep_size",
			"slot %q retains %s and its WAL will be removed at the next checkpoint (wal_status unreserved)", cfg.Slot, bytesString(retained))
	case cfg.MaxRetainedBytes > 0 && retained != nil && *retained > cfg.MaxRetainedBytes:
		fix := "start walcast so it acknowledges the slot; if the slot is abandoned: " + fmt.Sprintf("SELECT pg_drop_replication_slot(%s);", quoteLiteral(cfg.Slot))
		r.add("slot_wal", CheckWarn, fix, "slot %q retains %s of WAL (wal_status %s)", cfg.Slot, bytesString(retained), deref(walStatus))
	default:
		r.add("slot_wal", CheckOK, "", "slot %q retains %s of WAL", cfg.Slot, bytesString(retained))
	}
	return nil
}

func checkWalKeep(ctx context.Context, q Querier, _ *checkState, r *CheckReport) error {
	var keep string
	if err := q.QueryRow(ctx, "SHOW max_slot_wal_keep_size").Scan(&keep); err != nil {
		return fmt.Errorf("check max_slot_wal_keep_size: %w", err)
	}
	if keep == "-1" {
		r.add("max_slot_wal_keep_size", CheckWarn,
			"ALTER SYSTEM SET max_slot_wal_keep_size = '4GB'; SELECT pg_reload_conf();",
			"max_slot_wal_keep_size is unlimited: a stopped walcast makes Postgres keep WAL until the disk fills")
		return nil
	}
	r.add("max_slot_wal_keep_size", CheckOK, "", "max_slot_wal_keep_size is %s", keep)
	return nil
}

func checkSQLAPI(ctx context.Context, q Querier, _ *checkState, r *CheckReport) error {
	var emit, heartbeat bool
	err := q.QueryRow(ctx, `SELECT to_regprocedure('walcast.emit(text,text,jsonb)') IS NOT NULL,
		to_regprocedure('walcast.heartbeat()') IS NOT NULL`).Scan(&emit, &heartbeat)
	if err != nil {
		return fmt.Errorf("check walcast functions: %w", err)
	}
	if !emit || !heartbeat {
		r.add("sql_api", CheckWarn, "walcast migrate",
			"the walcast schema (walcast.emit, walcast.notify, walcast.heartbeat) is not installed: no events from SQL")
		return nil
	}
	// walcast delivers only messages signed with walcast.emit_key's key
	// (see EmitKey): an older, unsigned walcast.emit, or a key this role
	// cannot read, means every event from SQL is dropped.
	var signed, hasKey, canRead bool
	var user string
	err = q.QueryRow(ctx, `SELECT current_user::text,
		(SELECT p.prosecdef FROM pg_catalog.pg_proc p WHERE p.oid = to_regprocedure('walcast.emit(text,text,jsonb)')),
		to_regclass('walcast.emit_key') IS NOT NULL,
		CASE WHEN to_regclass('walcast.emit_key') IS NULL THEN false
		     ELSE has_table_privilege(to_regclass('walcast.emit_key'), 'SELECT') END`).Scan(&user, &signed, &hasKey, &canRead)
	if err != nil {
		return fmt.Errorf("check walcast.emit_key: %w", err)
	}
	// walcast.sessions (a node without Redis keeps its recovery sessions
	// there) records each session's owner: only that user may resume it.
	var sessionsOwner bool
	err = q.QueryRow(ctx, `SELECT to_regclass('walcast.sessions') IS NULL OR EXISTS (
		SELECT 1 FROM pg_catalog.pg_attribute
		WHERE attrelid = to_regclass('walcast.sessions') AND attname = 'owner' AND NOT attisdropped)`).Scan(&sessionsOwner)
	if err != nil {
		return fmt.Errorf("check walcast.sessions: %w", err)
	}
	switch {
	case !signed || !hasKey:
		r.add("sql_api", CheckWarn, "walcast migrate",
			"walcast.emit does not sign its messages (installed by an older walcast migrate): walcast drops its events as unsigned")
	case !sessionsOwner:
		r.add("sql_api", CheckWarn, "walcast migrate",
			"walcast.sessions has no owner column (installed by an older walcast migrate): a node without Redis cannot save sessions, so its clients are not recovered after a restart")
	case !canRead:
		r.add("sql_api", CheckWarn, "GRANT SELECT ON walcast.emit_key TO "+pgx.Identifier{user}.Sanitize()+";",
			"this role may not read walcast.emit_key: walcast cannot verify walcast.emit messages and drops them")
	default:
		r.add("sql_api", CheckOK, "", "walcast.emit, walcast.notify and walcast.heartbeat are installed; emits are signed and this role can read the key")
	}
	return nil
}

// checkFailover checks, on a primary, what a Postgres 17+ failover slot
// needs: the slot's failover flag, and synchronized_standby_slots naming the
// standbys' physical slots (else the logical slot can run ahead of a standby
// and is unusable after a promotion). Both are warnings: walcast streams
// without them, but a failover then loses the slot.
func checkFailover(ctx context.Context, q Querier, cfg *checkState, r *CheckReport) error {
	if cfg.serverNum < 170000 {
		r.add("failover", CheckOK, "", "Postgres %d.%d has no failover slots: a promotion leaves no logical slot behind",
			cfg.serverNum/10000, cfg.serverNum%10000)
		return nil
	}
	if cfg.slotExists {
		var failover bool
		if err := q.QueryRow(ctx, "SELECT failover FROM pg_replication_slots WHERE slot_name = $1", cfg.Slot).Scan(&failover); err != nil {
			return fmt.Errorf("check slot %q failover: %w", cfg.Slot, err)
		}
		if !failover {
			r.add("failover_slot", CheckWarn,
				fmt.Sprintf(`start walcast serve (it turns the flag on), or: psql "$WALCAST_DATABASE_URL replication=database" -c 'ALTER_REPLICATION_SLOT %s (FAILOVER true)'`, quoteIdent(cfg.Slot)),
				"slot %q has failover off: standbys do not synchronise it and a promotion loses it", cfg.Slot)
		} else {
			r.add("failover_slot", CheckOK, "", "slot %q has failover on", cfg.Slot)
		}
	}
	var standbySlots string
	if err := q.QueryRow(ctx, "SHOW synchronized_standby_slots").Scan(&standbySlots); err != nil {
		return fmt.Errorf("check synchronized_standby_slots: %w", err)
	}
	if strings.TrimSpace(standbySlots) == "" {
		r.add("synchronized_standby_slots", CheckWarn,
			"ALTER SYSTEM SET synchronized_standby_slots = 'standby1';  -- the standby's physical slot (its primary_slot_name); then SELECT pg_reload_conf();",
			"synchronized_standby_slots is empty: walcast can receive changes no standby has yet, and after a promotion the synced slot is behind or unusable")
		return nil
	}
	var missing []string
	for _, name := range strings.Split(standbySlots, ",") {
		name = strings.TrimSpace(name)
		var n int
		if err := q.QueryRow(ctx, "SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1 AND slot_type = 'physical'", name).Scan(&n); err != nil {
			return fmt.Errorf("check synchronized_standby_slots: %w", err)
		}
		if n == 0 {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		r.add("synchronized_standby_slots", CheckWarn,
			fmt.Sprintf("SELECT pg_create_physical_replication_slot(%s);  -- and set it as the standby's primary_slot_name", quoteLiteral(missing[0])),
			"synchronized_standby_slots names %s, which is not a physical slot here: logical decoding waits for it", strings.Join(missing, ", "))
		return nil
	}
	r.add("synchronized_standby_slots", CheckOK, "", "synchronized_standby_slots is %s", standbySlots)
	return nil
}

// checkStandby checks a hot standby for what it needs to keep a synchronised
// copy of the slot that survives its promotion (Postgres 17+).
func checkStandby(ctx context.Context, q Querier, cfg *checkState, r *CheckReport) error {
	if cfg.serverNum < 170000 {
		r.add("standby", CheckFail, "point walcast at the primary",
			"this is a standby on Postgres %d.%d: it has no failover slots, and walcast streams from the primary only",
			cfg.serverNum/10000, cfg.serverNum%10000)
		return nil
	}
	r.add("standby", CheckOK, "", "this is a standby: checking what it needs to carry slot %q through a promotion (walcast itself streams from the primary)", cfg.Slot)
	var syncSlots, feedback, primarySlot, conninfo string
	if err := q.QueryRow(ctx, `SELECT current_setting('sync_replication_slots'), current_setting('hot_standby_feedback'),
			current_setting('primary_slot_name'), current_setting('primary_conninfo')`).Scan(&syncSlots, &feedback, &primarySlot, &conninfo); err != nil {
		return fmt.Errorf("check standby settings: %w", err)
	}
	setting := func(name, val, want, fix, why string) {
		if val != want {
			r.add(name, CheckWarn, fix, "%s is %s: %s", name, val, why)
			return
		}
		r.add(name, CheckOK, "", "%s is %s", name, val)
	}
	setting("sync_replication_slots", syncSlots, "on", "ALTER SYSTEM SET sync_replication_slots = on; SELECT pg_reload_conf();",
		"the standby does not copy failover slots from the primary")
	setting("hot_standby_feedback", feedback, "on", "ALTER SYSTEM SET hot_standby_feedback = on; SELECT pg_reload_conf();",
		"slot synchronisation needs it, so the primary keeps the catalog rows the slot needs")
	if primarySlot == "" {
		r.add("primary_slot_name", CheckWarn,
			"on the primary: SELECT pg_create_physical_replication_slot('standby1'); here: ALTER SYSTEM SET primary_slot_name = 'standby1'; SELECT pg_reload_conf();",
			"primary_slot_name is empty: slot synchronisation needs a physical slot on the primary")
	} else {
		r.add("primary_slot_name", CheckOK, "", "primary_slot_name is %s", primarySlot)
	}
	if !strings.Contains(conninfo, "dbname=") {
		r.add("primary_conninfo", CheckWarn,
			"ALTER SYSTEM SET primary_conninfo = '… dbname=<the walcast database>'; SELECT pg_reload_conf();",
			"primary_conninfo names no dbname: slot synchronisation needs one")
	} else {
		r.add("primary_conninfo", CheckOK, "", "primary_conninfo names a database")
	}
	var synced, failover, temporary bool
	err := q.QueryRow(ctx, "SELECT synced, failover, temporary FROM pg_replication_slots WHERE slot_name = $1", cfg.Slot).Scan(&synced, &failover, &temporary)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		r.add("slot_synced", CheckWarn, "on the primary: check walcast check's failover_slot and synchronized_standby_slots; then wait for the standby to sync",
			"slot %q is not on this standby yet: a promotion now would lose it", cfg.Slot)
	case err != nil:
		return fmt.Errorf("check synced slot %q: %w", cfg.Slot, err)
	case !synced:
		r.add("slot_synced", CheckWarn, fmt.Sprintf("SELECT pg_drop_replication_slot(%s);  -- a slot created on the standby itself cannot be synced", quoteLiteral(cfg.Slot)),
			"slot %q exists here but is not synced from the primary", cfg.Slot)
	case temporary:
		// The slot sync worker keeps a synced slot temporary until the
		// primary's slot has moved past what this standby can guarantee
		// (its restart_lsn and catalog xmin); a promotion drops it.
		r.add("slot_synced", CheckWarn, "on the primary: let walcast serve advance the slot (it holds it at the oldest event of the recovery window), then check again; the standby's log says \"could not synchronize replication slot\" until then",
			"slot %q is synced but still temporary here: the primary's slot needs WAL or catalog rows older than this standby has, and a promotion now would lose it", cfg.Slot)
	default:
		r.add("slot_synced", CheckOK, "", "slot %q is synced from the primary", cfg.Slot)
	}
	return nil
}

// FormatCheckReport writes the report for humans: one line per finding, and
// under each problem the SQL that fixes it.
func FormatCheckReport(r CheckReport) string {
	var b strings.Builder
	for _, c := range r {
		fmt.Fprintf(&b, "%-4s %-28s %s\n", c.Severity, c.Name, c.Message)
		if c.Severity != CheckOK && c.Fix != "" {
			fmt.Fprintf(&b, "     fix: %s\n", c.Fix)
		}
	}
	return b.String()
}

func qualify(name string) string {
	if strings.Contains(name, ".") {
		return name
	}
	return "public." + name
}

func identName(c string) string {
	switch c {
	case "d":
		return "DEFAULT"
	case "n":
		return "NOTHING"
	case "f":
		return "FULL"
	case "i":
		return "USING INDEX"
	}
	return c
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

func bytesString(p *int64) string {
	if p == nil {
		return "unknown"
	}
	n := *p
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}

// quoteIdent quotes an SQL identifier only when it needs it.
func quoteIdent(s string) string {
	plain := s != ""
	for i, c := range s {
		if !(c == '_' || c >= 'a' && c <= 'z' || i > 0 && c >= '0' && c <= '9') {
			plain = false
		}
	}
	if plain {
		return s
	}
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}

func quoteQualified(schema, table string) string { return quoteIdent(schema) + "." + quoteIdent(table) }

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
