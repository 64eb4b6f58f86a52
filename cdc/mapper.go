package cdc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/walcast/walcast/internal/jsonw"
	"github.com/walcast/walcast/internal/logkey"
	"github.com/walcast/walcast/internal/micros"
)

// MapperConfig configures a Mapper.
type MapperConfig struct {
	// Mapping names tables and columns and switches events; nil means
	// DefaultMapping().
	Mapping *Mapping
	// Logger receives warnings (bad walcast.emit messages, missing old row
	// images, lookup misses: each kind once per table); nil means
	// slog.Default().
	Logger *slog.Logger
	// EmitKey verifies walcast.emit messages (see EmitKey). The zero value
	// means Load reads it from walcast.emit_key; if it cannot, Load logs an
	// Error and every walcast.emit message is dropped as unverified.
	EmitKey EmitKey
}

// MapperStats counts what the Mapper could not map. All fields only grow.
type MapperStats struct {
	BadMessages     uint64 // walcast.emit messages that were not valid (logged, dropped)
	Unverified      uint64 // "walcast" messages without a valid signature: forged or unsigned (logged, dropped)
	LookupMisses    uint64 // inventory rows whose variant or product is unknown
	MissingOldImage uint64 // updates/deletes without REPLICA IDENTITY FULL where an old value was needed
}

// eventsPerChange is the stride of EventID.Index: event k (0..3) of the
// change at position i in its transaction gets Index i*eventsPerChange+k. The
// index depends only on the change's position and the event kind, never on
// lookup state, so a redelivered transaction gives every event the same
// identity; indexes increase in commit order within a transaction.
const eventsPerChange = 4

// Mapper turns Changes into Events. Map is pure apart from the
// Mapper's own state (lookup caches, metrics); it does no I/O.
//
// What maps (default names; Mapping renames tables and columns):
//
//   - inventory INSERT/UPDATE → product:stock-updated to product:{productId}
//     {variantId, productId, available, timestamp} when available (quantity
//     minus reserved) changed; admin:low-stock to admin:room and
//     inventory:low-stock to seller:{sellerId} {id, name, stock, …} once per
//     crossing to available <= low_stock_threshold. See mapInventory for what
//     happens without REPLICA IDENTITY FULL.
//   - orders INSERT → admin:new-order {order, timestamp} and, with a seller,
//     order:new (the row) to seller:{sellerId}. UPDATE → order:status-changed
//     {orderId, status, trackingNumber, timestamp} to order:{id} when status
//     or tracking number changed, order:status {id, orderNumber, status} to
//     user:{userId} when status changed. Every change moves the metrics
//     (metricsState).
//   - variants and products changes keep the lookup caches fresh; they give
//     no events. TRUNCATE clears a cache or resets the metrics.
//   - logical message "walcast" (walcast.emit, walcast.notify) → its event to
//     its room, if its signature verifies with the EmitKey (else it is
//     dropped and counted in Stats().Unverified); "walcast.heartbeat" and
//     other prefixes → nothing.
//
// Payload timestamps are the commit time in ms. "The row" is encoded from the
// column bytes as to_jsonb(row) would (appendRowJSON). Event identity is
// (commit LSN, change index × 4 + event number): see eventsPerChange.
//
// Map is meant for one goroutine (the pipeline's); MetricsEvent,
// CurrentMetrics, AppendRowJSON and Stats may be called from any goroutine
// (one mutex guards the state). Load must run before the first Map (it may
// run again later, e.g. after a reconnect). Until Load, lookups are empty
// (stock events for unknown variants are skipped) and domains are not
// resolved.
type Mapper struct {
	mp        *Mapping
	log       *slog.Logger
	threshold int64
	exclude   map[string]bool
	on        struct{ stock, adminLow, newOrder, statusChanged, metrics, orderStatus, orderNew, invLow, emit bool }
	tables    [4]struct{ schema, name string }

	mu      sync.Mutex
	rels    map[uint32]*relInfo
	domains map[uint32]uint32 // domain type OID -> its base type OID (from Load)
	arrays  map[uint32]uint32 // array type OID -> element type OID (from Load)
	lk      lookups
	met     metricsState
	warned  map[string]bool
	scratch []byte

	verify   EmitVerifier
	keyFixed bool // the key came from MapperConfig: Load does not read it

	badMessages, lookupMisses, missingOld atomic.Uint64
}

// Table kinds, in Mapping.tables order.
const (
	tableOrders = iota
	tableInventory
	tableVariants
	tableProducts
	tableNone
)

// Column slots of relInfo.idx per table kind, in Mapping.tables column order.
const (
	oID, oOrderNumber, oUserID, oSellerID, oStatus, oTotal, oTracking = 0, 1, 2, 3, 4, 5, 6
	iVariantID, iQuantity, iReserved, iThreshold                      = 0, 1, 2, 3
	vID, vProductID, vName                                            = 0, 1, 2
	pID, pName, pSellerID                                             = 0, 1, 2
)

// relInfo is a Relation resolved against the mapping.
type relInfo struct {
	rel    *Relation
	ncols  int
	kind   int
	idx    [8]int   // column index per slot; -1 when unmapped or not published
	oids   []uint32 // column types, domains resolved to their base type
	elems  []uint32 // element types of array columns (domains resolved), else 0
	broken bool     // a required column is missing from the relation
}

// NewMapper returns a Mapper for cfg. It does no I/O; call Load before Map.
func NewMapper(cfg MapperConfig) (*Mapper, error) {
	mp := cfg.Mapping
	if mp == nil {
		mp = DefaultMapping()
	}
	if err := mp.Validate(); err != nil {
		return nil, err
	}
	m := &Mapper{
		mp:        mp,
		log:       cfg.Logger,
		threshold: mp.LowStockThreshold,
		exclude:   map[string]bool{},
		rels:      map[uint32]*relInfo{},
		lk:        newLookups(),
		warned:    map[string]bool{},
	}
	if m.log == nil {
		m.log = slog.Default()
	}
	m.log = m.log.With(logkey.Component, "mapper")
	m.verify.SetKey(cfg.EmitKey)
	m.keyFixed = !cfg.EmitKey.IsZero()
	if m.threshold == 0 {
		m.threshold = DefaultLowStockThreshold
	}
	for _, s := range mp.Metrics.ExcludeStatuses {
		m.exclude[s] = true
	}
	m.on.stock = mp.Enabled(EventStockUpdated)
	m.on.adminLow = mp.Enabled(EventAdminLowStock)
	m.on.newOrder = mp.Enabled(EventAdminNewOrder)
	m.on.statusChanged = mp.Enabled(EventOrderStatusChanged)
	m.on.metrics = mp.Enabled(EventMetricsUpdated)
	m.on.orderStatus = mp.Enabled(EventOrderStatus)
	m.on.orderNew = mp.Enabled(EventOrderNew)
	m.on.invLow = mp.Enabled(EventInventoryLowStock)
	m.on.emit = mp.Enabled(EventEmit)
	for i, t := range mp.tables() {
		m.tables[i].schema, m.tables[i].name, _ = splitTable(t.table)
	}
	m.met.wmIdx = -1
	return m, nil
}

// Mapping returns the Mapper's mapping. Do not modify it.
func (m *Mapper) Mapping() *Mapping { return m.mp }

// Stats returns the Mapper's counters.
func (m *Mapper) Stats() MapperStats {
	return MapperStats{
		BadMessages:     m.badMessages.Load(),
		Unverified:      m.verify.Dropped(),
		LookupMisses:    m.lookupMisses.Load(),
		MissingOldImage: m.missingOld.Load(),
	}
}

// Load validates the mapping against the database catalog (an unknown table
// or column is an error naming it), loads the lookup caches (variants,
// products) and starts the order metrics from one SQL aggregate. q is a
// *pgx.Conn or *pgxpool.Pool on an ordinary (not replication) connection.
func (m *Mapper) Load(ctx context.Context, q Querier) error {
	if err := m.mp.validateCatalog(ctx, q); err != nil {
		return err
	}
	lk, err := loadLookups(ctx, q, m.mp)
	if err != nil {
		return err
	}
	met, err := loadMetrics(ctx, q, m.mp)
	if err != nil {
		return err
	}
	domains, arrays, err := loadTypes(ctx, q)
	if err != nil {
		return err
	}
	if m.on.emit && !m.keyFixed {
		// Without the key no walcast.emit message verifies, but table
		// changes still map: the error is logged, not returned.
		key, err := LoadEmitKey(ctx, q)
		if err != nil {
			m.log.Error("walcast.emit messages will be dropped until walcast is restarted with the key", logkey.Err, err)
		}
		m.verify.SetKey(key)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.lk = lk
	m.domains, m.arrays = domains, arrays
	clear(m.rels) // resolve column types again with the domains
	// Keep the watermark of changes already applied in this process.
	if met.wmLSN < m.met.wmLSN {
		met.wmLSN, met.wmIdx = m.met.wmLSN, m.met.wmIdx
	}
	met.sent = 0
	met.version = m.met.version + 1
	m.met = met
	m.log.Info("mapper loaded", "variants", len(lk.variants), "products", len(lk.products),
		"orders_counted", met.count, "metrics_from_lsn", met.wmLSN.String())
	return nil
}

// Map appends the events for change c to dst and returns it. It never
// retains c or its byte slices. A row of an unmapped table gives no events.
// Bad walcast.emit messages are logged and counted (Stats), not returned as
// errors; the error is for a malformed Change (e.g. a row change without a
// Relation).
func (m *Mapper) Map(dst []Event, c *Change) ([]Event, error) {
	if c == nil {
		return dst, errors.New("mapper: nil change")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	switch c.Op {
	case OpMessage:
		return m.mapMessage(dst, c), nil
	case OpTruncate:
		rels := c.Truncated
		if len(rels) == 0 && c.Relation != nil {
			rels = []*Relation{c.Relation}
		}
		for _, r := range rels {
			m.truncateLocked(c, r)
		}
		return dst, nil
	case OpInsert, OpUpdate, OpDelete:
	default:
		return dst, fmt.Errorf("mapper: change with unknown op %d", c.Op)
	}
	if c.Relation == nil {
		return dst, fmt.Errorf("mapper: %s change without a relation", c.Op)
	}
	ri := m.relInfoLocked(c.Relation)
	if ri.broken {
		return dst, nil
	}
	switch ri.kind {
	case tableInventory:
		return m.mapInventory(dst, c, ri), nil
	case tableOrders:
		return m.mapOrder(dst, c, ri), nil
	case tableVariants:
		m.lk.applyVariant(c, ri)
	case tableProducts:
		m.lk.applyProduct(c, ri)
	}
	return dst, nil
}

// baseType follows domains to their base type; the loop bound guards against
// a malformed (cyclic) map.
func (m *Mapper) baseType(oid uint32) uint32 {
	for range 8 {
		base, ok := m.domains[oid]
		if !ok {
			break
		}
		oid = base
	}
	return oid
}

// AppendRowJSON appends row t of rel to dst as the JSON object the Mapper
// sends as "the order row": equal to Postgres' to_jsonb(row), with domain
// columns encoded like their base type (known after Load).
func (m *Mapper) AppendRowJSON(dst []byte, rel *Relation, t Tuple) []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	ri := m.relInfoLocked(rel)
	return appendRowJSON(dst, rel, ri.oids, ri.elems, t)
}

// relInfoLocked resolves rel against the mapping, cached per relation id. A
// new Relation message (new pointer or new column count) resolves again.
func (m *Mapper) relInfoLocked(rel *Relation) *relInfo {
	if ri := m.rels[rel.ID]; ri != nil && ri.rel == rel && ri.ncols == len(rel.Columns) {
		return ri
	}
	n := len(rel.Columns)
	ri := &relInfo{rel: rel, ncols: n, kind: tableNone, oids: make([]uint32, n), elems: make([]uint32, n)}
	for i := range ri.idx {
		ri.idx[i] = -1
	}
	for i, c := range rel.Columns {
		ri.oids[i] = m.baseType(c.TypeOID)
		elem, ok := arrayElems[ri.oids[i]]
		if !ok {
			elem = m.arrays[ri.oids[i]]
		}
		if elem != 0 {
			ri.elems[i] = m.baseType(elem)
		}
	}
	for k, t := range m.tables {
		if t.schema == rel.Namespace && t.name == rel.Name {
			ri.kind = k
			break
		}
	}
	if ri.kind != tableNone {
		mt := m.mp.tables()[ri.kind]
		var missing []string
		for slot, col := range mt.cols {
			if col.name == "" {
				continue
			}
			for j := range rel.Columns {
				if rel.Columns[j].Name == col.name {
					ri.idx[slot] = j
					break
				}
			}
			if ri.idx[slot] < 0 {
				missing = append(missing, col.name)
				if col.required {
					ri.broken = true
				}
			}
		}
		if len(missing) > 0 {
			lvl := slog.LevelWarn
			if ri.broken {
				lvl = slog.LevelError
			}
			m.log.Log(context.Background(), lvl, "mapped columns missing from the replicated relation (publication column list?)",
				logkey.Relation, rel.Namespace+"."+rel.Name, "columns", strings.Join(missing, ","), "events_off", ri.broken)
		}
	}
	m.rels[rel.ID] = ri
	return ri
}

// warnOnceLocked logs msg once per key.
func (m *Mapper) warnOnceLocked(key, msg string, args ...any) {
	if m.warned[key] {
		return
	}
	m.warned[key] = true
	m.log.Warn(msg, args...)
}

// emitLocked appends an event whose payload is copied out of m.scratch.
func (m *Mapper) emitLocked(dst []Event, c *Change, k uint32, room, name string) []Event {
	p := make([]byte, len(m.scratch))
	copy(p, m.scratch)
	return append(dst, Event{
		ID:         EventID{LSN: c.CommitLSN, Index: c.Index*eventsPerChange + k},
		Room:       room,
		Name:       name,
		Payload:    p,
		CommitTime: c.CommitTime,
	})
}

// colValue returns column i of t, or an absent value.
func colValue(t Tuple, i int) Value {
	if i < 0 || i >= len(t) {
		return Value{}
	}
	return t[i]
}

// textCol returns the text of column i when it holds a (non-NULL) value.
func textCol(t Tuple, i int) ([]byte, bool) {
	v := colValue(t, i)
	return v.Data, v.Kind == ValueText
}

// intCol parses column i as an integer.
func intCol(t Tuple, i int) (int64, bool) {
	b, ok := textCol(t, i)
	if !ok {
		return 0, false
	}
	return parseInt(b)
}

// sameCol reports whether column i is known in both tuples and equal.
func sameCol(a, b Tuple, i int) bool {
	va, vb := colValue(a, i), colValue(b, i)
	if va.Kind != vb.Kind || (va.Kind != ValueText && va.Kind != ValueNull) {
		return false
	}
	return bytes.Equal(va.Data, vb.Data)
}

// fullOld returns the old row image if it is a full one (REPLICA IDENTITY
// FULL); key-only images do not count.
func fullOld(c *Change) Tuple {
	if c.Old == nil || c.Relation.ReplicaIdentity != 'f' {
		return nil
	}
	return c.Old
}

func (m *Mapper) appendTS(dst []byte, c *Change) []byte {
	dst = append(dst, `"timestamp":`...)
	return strconv.AppendInt(dst, c.CommitTime.UnixMilli(), 10)
}

// appendCol appends column slot of t as JSON (null when unmapped or unknown).
func appendCol(dst []byte, ri *relInfo, t Tuple, slot int) []byte {
	i := ri.idx[slot]
	if i < 0 {
		return append(dst, "null"...)
	}
	return appendValueJSON(dst, ri.oids[i], colValue(t, i))
}

func appendOptString(dst []byte, s string, ok bool) []byte {
	if !ok {
		return append(dst, "null"...)
	}
	return jsonw.AppendString(dst, s)
}

// mapInventory: product:stock-updated, admin:low-stock, inventory:low-stock.
//
// available = quantity - reserved. Stock-updated fires on INSERT and on an
// UPDATE that changes available; without a full old image (no REPLICA
// IDENTITY FULL) every UPDATE fires it, since the change cannot be seen.
// Low stock fires once per crossing: on INSERT when available <= threshold,
// on UPDATE when the old row was above its threshold and the new one is at or
// below. Without a full old image no crossing is invented: no low-stock event,
// counted in MissingOldImage and logged once.
func (m *Mapper) mapInventory(dst []Event, c *Change, ri *relInfo) []Event {
	if c.Op == OpDelete {
		return dst
	}
	nt := c.New
	vid, ok := textCol(nt, ri.idx[iVariantID])
	if !ok {
		return dst
	}
	avail, threshold, ok := m.stockLevels(nt, ri)
	if !ok {
		return dst
	}
	stockChanged, crossed := true, avail <= threshold
	if c.Op == OpUpdate {
		if old := fullOld(c); old != nil {
			oa, ot, ok := m.stockLevels(old, ri)
			stockChanged = !ok || oa != avail
			crossed = crossed && ok && oa > ot
		} else {
			crossed = false
			if m.on.adminLow || m.on.invLow {
				m.missingOld.Add(1)
				m.warnOnceLocked("noold:"+ri.rel.Name, "inventory update without the old row: low-stock crossings need REPLICA IDENTITY FULL",
					"relation", ri.rel.Namespace+"."+ri.rel.Name)
			}
		}
	}
	if !stockChanged && !crossed {
		return dst
	}
	vi, vok := m.lk.variants[string(vid)]
	var pi productInfo
	pok := false
	if vok {
		pi, pok = m.lk.products[vi.productID]
	}
	if !vok || !pok {
		m.lookupMisses.Add(1)
		m.warnOnceLocked("miss:"+ri.rel.Name, "inventory row for an unknown variant or product; events needing it are skipped",
			"relation", ri.rel.Namespace+"."+ri.rel.Name, "variant", string(vid))
	}

	if stockChanged && m.on.stock && vok {
		b := append(m.scratch[:0], `{"variantId":`...)
		b = appendCol(b, ri, nt, iVariantID)
		b = append(b, `,"productId":`...)
		b = append(b, vi.productJSON...)
		b = append(b, `,"available":`...)
		b = strconv.AppendInt(b, avail, 10)
		b = append(b, ',')
		b = m.appendTS(b, c)
		m.scratch = append(b, '}')
		dst = m.emitLocked(dst, c, 0, "product:"+vi.productID, EventStockUpdated)
	}
	if !crossed {
		return dst
	}
	if m.on.adminLow {
		b := append(m.scratch[:0], `{"variant":{"id":`...)
		b = appendCol(b, ri, nt, iVariantID)
		b = append(b, `,"product_id":`...)
		if vok {
			b = append(b, vi.productJSON...)
		} else {
			b = append(b, "null"...)
		}
		b = append(b, `,"product_name":`...)
		b = appendOptString(b, pi.name, pok && pi.hasName)
		b = append(b, `,"name":`...)
		b = appendOptString(b, vi.name, vok && vi.hasName)
		b = append(b, `,"available":`...)
		b = strconv.AppendInt(b, avail, 10)
		b = append(b, `,"threshold":`...)
		b = strconv.AppendInt(b, threshold, 10)
		b = append(b, `},"variantId":`...)
		b = appendCol(b, ri, nt, iVariantID)
		b = append(b, `,"available":`...)
		b = strconv.AppendInt(b, avail, 10)
		b = append(b, `,"threshold":`...)
		b = strconv.AppendInt(b, threshold, 10)
		b = append(b, ',')
		b = m.appendTS(b, c)
		m.scratch = append(b, '}')
		dst = m.emitLocked(dst, c, 1, RoomAdmin, EventAdminLowStock)
	}
	if m.on.invLow && pok && pi.hasSeller {
		b := append(m.scratch[:0], `{"id":`...)
		b = append(b, vi.productJSON...)
		b = append(b, `,"name":`...)
		b = appendOptString(b, pi.name, pi.hasName)
		b = append(b, `,"stock":`...)
		b = strconv.AppendInt(b, avail, 10)
		b = append(b, `,"variantId":`...)
		b = appendCol(b, ri, nt, iVariantID)
		b = append(b, `,"variantName":`...)
		b = appendOptString(b, vi.name, vi.hasName)
		b = append(b, `,"threshold":`...)
		b = strconv.AppendInt(b, threshold, 10)
		b = append(b, ',')
		b = m.appendTS(b, c)
		m.scratch = append(b, '}')
		dst = m.emitLocked(dst, c, 2, "seller:"+pi.sellerID, EventInventoryLowStock)
	}
	return dst
}

// stockLevels returns available (quantity - reserved) and the threshold of an
// inventory row; false when quantity is NULL or unknown.
func (m *Mapper) stockLevels(t Tuple, ri *relInfo) (avail, threshold int64, ok bool) {
	q, ok := intCol(t, ri.idx[iQuantity])
	if !ok {
		return 0, 0, false
	}
	var r int64
	if ri.idx[iReserved] >= 0 {
		v := colValue(t, ri.idx[iReserved])
		switch v.Kind {
		case ValueText:
			if r, ok = parseInt(v.Data); !ok {
				return 0, 0, false
			}
		case ValueNull:
		default:
			return 0, 0, false
		}
	}
	threshold = m.threshold
	if th, ok := intCol(t, ri.idx[iThreshold]); ok {
		threshold = th
	}
	return q - r, threshold, true
}

// mapOrder: admin:new-order and order:new on INSERT; order:status-changed and
// order:status on UPDATE; metrics on every change.
//
// An UPDATE fires order:status-changed when status or tracking number
// changed and order:status when status changed. Without a full old image
// (no REPLICA IDENTITY FULL) the change cannot be seen, so both fire on every
// UPDATE (clients get the same status again rather than miss one).
func (m *Mapper) mapOrder(dst []Event, c *Change, ri *relInfo) []Event {
	m.applyOrderMetricsLocked(c, ri)
	switch c.Op {
	case OpInsert:
		var row []byte // the row JSON inside admin:new-order's payload, shared by order:new
		if m.on.newOrder {
			b := append(m.scratch[:0], `{"order":`...)
			start := len(b)
			b = appendRowJSON(b, ri.rel, ri.oids, ri.elems, c.New)
			end := len(b)
			b = append(b, ',')
			b = m.appendTS(b, c)
			m.scratch = append(b, '}')
			dst = m.emitLocked(dst, c, 0, RoomAdmin, EventAdminNewOrder)
			// Payloads are immutable once emitted, so order:new can share it.
			row = dst[len(dst)-1].Payload[start:end:end]
		}
		if m.on.orderNew {
			if seller, ok := textCol(c.New, ri.idx[oSellerID]); ok {
				if row == nil {
					m.scratch = appendRowJSON(m.scratch[:0], ri.rel, ri.oids, ri.elems, c.New)
					dst = m.emitLocked(dst, c, 1, "seller:"+string(seller), EventOrderNew)
				} else {
					dst = append(dst, Event{
						ID:         EventID{LSN: c.CommitLSN, Index: c.Index*eventsPerChange + 1},
						Room:       "seller:" + string(seller),
						Name:       EventOrderNew,
						Payload:    row,
						CommitTime: c.CommitTime,
					})
				}
			}
		}
	case OpUpdate:
		id, ok := textCol(c.New, ri.idx[oID])
		if !ok {
			return dst
		}
		statusChanged, trackChanged := true, ri.idx[oTracking] >= 0
		if old := fullOld(c); old != nil {
			statusChanged = !sameCol(old, c.New, ri.idx[oStatus])
			trackChanged = trackChanged && !sameCol(old, c.New, ri.idx[oTracking])
		}
		if (statusChanged || trackChanged) && m.on.statusChanged {
			b := append(m.scratch[:0], `{"orderId":`...)
			b = appendCol(b, ri, c.New, oID)
			b = append(b, `,"status":`...)
			b = appendCol(b, ri, c.New, oStatus)
			b = append(b, `,"trackingNumber":`...)
			b = appendCol(b, ri, c.New, oTracking)
			b = append(b, ',')
			b = m.appendTS(b, c)
			m.scratch = append(b, '}')
			dst = m.emitLocked(dst, c, 0, "order:"+string(id), EventOrderStatusChanged)
		}
		if statusChanged && m.on.orderStatus {
			if user, ok := textCol(c.New, ri.idx[oUserID]); ok {
				b := append(m.scratch[:0], `{"id":`...)
				b = appendCol(b, ri, c.New, oID)
				b = append(b, `,"orderNumber":`...)
				b = appendCol(b, ri, c.New, oOrderNumber)
				b = append(b, `,"status":`...)
				b = appendCol(b, ri, c.New, oStatus)
				b = append(b, ',')
				b = m.appendTS(b, c)
				m.scratch = append(b, '}')
				dst = m.emitLocked(dst, c, 1, "user:"+string(user), EventOrderStatus)
			}
		}
	}
	return dst
}

// orderAmount returns an order row's total in micro-units if it counts
// towards the metrics.
func (m *Mapper) orderAmount(t Tuple, ri *relInfo) (amount int64, counts, known bool) {
	st, ok := textCol(t, ri.idx[oStatus])
	if !ok {
		return 0, false, false
	}
	if m.exclude[string(st)] {
		return 0, false, true
	}
	v := colValue(t, ri.idx[oTotal])
	switch v.Kind {
	case ValueNull:
		return 0, true, true
	case ValueText:
		a, ok := micros.Parse(v.Data)
		return a, ok, ok
	}
	return 0, false, false
}

func (m *Mapper) applyOrderMetricsLocked(c *Change, ri *relInfo) {
	if !m.met.admit(c.CommitLSN, c.Index) {
		return
	}
	var oldT, newT Tuple
	switch c.Op {
	case OpInsert:
		newT = c.New
	case OpUpdate, OpDelete:
		oldT = fullOld(c)
		if oldT == nil {
			if m.on.metrics {
				m.missingOld.Add(1)
				m.warnOnceLocked("nometrics:"+ri.rel.Name, "order update/delete without the old row: metrics need REPLICA IDENTITY FULL",
					"relation", ri.rel.Namespace+"."+ri.rel.Name)
			}
			return
		}
		if c.Op == OpUpdate {
			newT = c.New
		}
	}
	if oldT != nil {
		if a, counts, known := m.orderAmount(oldT, ri); known && counts {
			m.met.add(a, -1, c.CommitTime)
		}
	}
	if newT != nil {
		if a, counts, known := m.orderAmount(newT, ri); known && counts {
			m.met.add(a, 1, c.CommitTime)
		}
	}
}

func (m *Mapper) truncateLocked(c *Change, rel *Relation) {
	if rel == nil {
		return
	}
	ri := m.relInfoLocked(rel)
	switch ri.kind {
	case tableVariants:
		clear(m.lk.variants)
	case tableProducts:
		clear(m.lk.products)
	case tableOrders:
		if m.met.admit(c.CommitLSN, c.Index) {
			m.met.reset(c.CommitTime)
		}
	}
}

// Socket.IO reserves these event names; walcast.emit may not use them.
var reservedEventNames = map[string]bool{
	"connect": true, "connect_error": true, "disconnect": true, "disconnecting": true,
	"newListener": true, "removeListener": true,
}

// Limits on walcast.emit messages: a message over them is dropped and
// counted, so one bad emit cannot flood every client of a room.
const (
	maxRoomLen   = 256
	maxEventLen  = 256
	MaxEmitBytes = 1 << 20 // content of one walcast.emit message (1 MiB)
)

// emitMessage is the content of a walcast.emit logical message.
type emitMessage struct {
	Room    *string         `json:"room"`
	Event   *string         `json:"event"`
	Payload json.RawMessage `json:"payload"`
}

// mapMessage maps a logical decoding message: prefix "walcast" is a
// walcast.emit (room, event, payload), "walcast.heartbeat" gives nothing,
// other prefixes belong to someone else and are ignored.
func (m *Mapper) mapMessage(dst []Event, c *Change) []Event {
	if c.Prefix != MessagePrefix || !m.on.emit {
		return dst
	}
	body, ok := m.verify.Verify(m.log, c)
	if !ok {
		return dst
	}
	room, event, payload, err := parseEmit(body)
	if err != nil {
		m.badMessages.Add(1)
		m.log.Warn("dropped a bad walcast.emit message", logkey.LSN, c.CommitLSN.String(), logkey.XID, c.XID, logkey.Reason, err.Error())
		return dst
	}
	m.scratch = append(m.scratch[:0], payload...)
	return m.emitLocked(dst, c, 0, room, event)
}

// parseEmit validates a walcast.emit message's content.
func parseEmit(content []byte) (room, event string, payload []byte, err error) {
	if len(content) > MaxEmitBytes {
		return "", "", nil, fmt.Errorf("content is %d bytes, more than %d", len(content), MaxEmitBytes)
	}
	var msg emitMessage
	if err := json.Unmarshal(content, &msg); err != nil {
		return "", "", nil, fmt.Errorf("content is not a JSON object: %w", err)
	}
	if msg.Room == nil || strings.TrimSpace(*msg.Room) == "" {
		return "", "", nil, errors.New(`"room" must be a non-empty string`)
	}
	if msg.Event == nil || strings.TrimSpace(*msg.Event) == "" {
		return "", "", nil, errors.New(`"event" must be a non-empty string`)
	}
	room, event = *msg.Room, *msg.Event
	if len(room) > maxRoomLen || strings.ContainsFunc(room, isControl) {
		return "", "", nil, fmt.Errorf("room %.40q is longer than %d bytes or has control characters", room, maxRoomLen)
	}
	if len(event) > maxEventLen || strings.ContainsFunc(event, isControl) {
		return "", "", nil, fmt.Errorf("event %.40q is longer than %d bytes or has control characters", event, maxEventLen)
	}
	if reservedEventNames[event] {
		return "", "", nil, fmt.Errorf("event name %q is reserved by Socket.IO", event)
	}
	payload = []byte("null")
	if len(msg.Payload) > 0 {
		// Canonical, as a payload that crossed Redis is: the same bytes on
		// every node. json.Unmarshal has checked it is JSON.
		if payload, err = jsonw.AppendCanonical(nil, msg.Payload); err != nil {
			return "", "", nil, fmt.Errorf("payload: %w", err)
		}
	}
	return room, event, payload, nil
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }
