package cdc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
)

// The events the Mapper produces. They are also the keys of
// Mapping.Events.
const (
	EventStockUpdated       = "product:stock-updated"
	EventAdminLowStock      = "admin:low-stock"
	EventAdminNewOrder      = "admin:new-order"
	EventOrderStatusChanged = "order:status-changed"
	EventMetricsUpdated     = "admin:metrics-updated"
	EventOrderStatus        = "order:status"
	EventOrderNew           = "order:new"
	EventInventoryLowStock  = "inventory:low-stock"
	EventNotification       = "notification"
	// EventEmit switches all walcast.emit / walcast.notify messages (including
	// "notification") on or off.
	EventEmit = "walcast.emit"
)

// Logical decoding message prefixes the Mapper understands.
const (
	MessagePrefix          = "walcast"           // walcast.emit: {"room","event","payload"}
	MessagePrefixHeartbeat = "walcast.heartbeat" // walcast.heartbeat: no event
)

// Rooms the Mapper writes to.
const (
	RoomAdmin   = "admin:room"
	RoomMetrics = "admin:metrics"
)

// DefaultLowStockThreshold is used when the inventory table has no threshold
// column mapped, or the row's threshold is NULL.
const DefaultLowStockThreshold = 5

// ErrMappingMismatch reports that the mapping names a table or column the
// database does not have. Mapper.Load wraps it (errors.Is) together with one
// line per missing name; retrying will not help, so callers should fail fast.
var ErrMappingMismatch = errors.New("cdc: mapping does not match the database")

// allEvents lists the keys Mapping.Events accepts.
var allEvents = []string{
	EventStockUpdated, EventAdminLowStock, EventAdminNewOrder, EventOrderStatusChanged,
	EventMetricsUpdated, EventOrderStatus, EventOrderNew, EventInventoryLowStock, EventEmit,
}

// Mapping names the tables and columns the Mapper reads and says which events
// it produces. DefaultMapping is the demo schema in sql/. A mapping file
// (WALCAST_MAPPING) is JSON of this shape; fields it leaves out keep their
// default, unknown fields are an error. Tables are "schema.table" or "table"
// (schema public). A column set to "" is not mapped; only the columns marked
// optional may be unmapped.
//
//	{
//	  "orders":    {"table": "shop.purchases", "id": "purchase_id", "sellerId": ""},
//	  "events":    {"order:new": false},
//	  "metrics":   {"excludeStatuses": ["cancelled", "refunded", "failed"]}
//	}
type Mapping struct {
	Orders    OrdersMapping    `json:"orders"`
	Inventory InventoryMapping `json:"inventory"`
	Variants  VariantsMapping  `json:"variants"`
	Products  ProductsMapping  `json:"products"`

	// Events switches events by name (the Event… constants); an event not
	// listed is on.
	Events map[string]bool `json:"events,omitempty"`

	Metrics MetricsMapping `json:"metrics"`

	// LowStockThreshold applies when Inventory.LowStockThreshold is unmapped or
	// NULL. Zero means DefaultLowStockThreshold.
	LowStockThreshold int64 `json:"lowStockThreshold,omitempty"`
}

// OrdersMapping maps the orders table.
type OrdersMapping struct {
	Table          string `json:"table"`
	ID             string `json:"id"`
	OrderNumber    string `json:"orderNumber"`    // optional
	UserID         string `json:"userId"`         // optional: no order:status without it
	SellerID       string `json:"sellerId"`       // optional: no order:new without it
	Status         string `json:"status"`         // an enum or text column
	Total          string `json:"total"`          // numeric
	TrackingNumber string `json:"trackingNumber"` // optional
}

// InventoryMapping maps the inventory table (one row per variant).
type InventoryMapping struct {
	Table             string `json:"table"`
	VariantID         string `json:"variantId"`
	Quantity          string `json:"quantity"`
	Reserved          string `json:"reserved"`          // optional: 0 when unmapped
	LowStockThreshold string `json:"lowStockThreshold"` // optional: Mapping.LowStockThreshold
}

// VariantsMapping maps the variants table (variant → product).
type VariantsMapping struct {
	Table     string `json:"table"`
	ID        string `json:"id"`
	ProductID string `json:"productId"`
	Name      string `json:"name"` // optional
}

// ProductsMapping maps the products table (product → name, seller).
type ProductsMapping struct {
	Table    string `json:"table"`
	ID       string `json:"id"`
	Name     string `json:"name"`     // optional
	SellerID string `json:"sellerId"` // optional: no inventory:low-stock without it
}

// MetricsMapping says which orders count in admin:metrics-updated.
type MetricsMapping struct {
	// ExcludeStatuses are order statuses that do not count towards
	// totalRevenue, totalOrders and averageOrderValue. Nil means
	// DefaultExcludeStatuses; an empty list counts every order.
	ExcludeStatuses []string `json:"excludeStatuses"`
}

// DefaultExcludeStatuses: cancelled and refunded orders are not revenue.
var DefaultExcludeStatuses = []string{"cancelled", "refunded"}

// DefaultMapping returns the mapping of the demo schema (sql/010_demo_schema.sql).
func DefaultMapping() *Mapping {
	return &Mapping{
		Orders: OrdersMapping{
			Table: "public.orders", ID: "id", OrderNumber: "order_number", UserID: "user_id",
			SellerID: "seller_id", Status: "status", Total: "total", TrackingNumber: "tracking_number",
		},
		Inventory: InventoryMapping{
			Table: "public.inventory", VariantID: "variant_id", Quantity: "quantity",
			Reserved: "reserved", LowStockThreshold: "low_stock_threshold",
		},
		Variants: VariantsMapping{Table: "public.variants", ID: "id", ProductID: "product_id", Name: "name"},
		Products: ProductsMapping{Table: "public.products", ID: "id", Name: "name", SellerID: "seller_id"},
		Metrics:  MetricsMapping{ExcludeStatuses: append([]string(nil), DefaultExcludeStatuses...)},
	}
}

// LoadMapping reads a mapping file. An empty path returns DefaultMapping.
func LoadMapping(path string) (*Mapping, error) {
	if path == "" {
		return DefaultMapping(), nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("mapping: read %s: %w", path, err)
	}
	m, err := ParseMapping(b)
	if err != nil {
		return nil, fmt.Errorf("mapping %s: %w", path, err)
	}
	return m, nil
}

// ParseMapping parses a mapping file's JSON over DefaultMapping and validates
// it (without a database; Mapper.Load checks it against the catalog).
func ParseMapping(b []byte) (*Mapping, error) {
	m := DefaultMapping()
	m.Metrics.ExcludeStatuses = nil
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(m); err != nil {
		return nil, fmt.Errorf("mapping: parse: %w", err)
	}
	if dec.More() {
		return nil, errors.New("mapping: parse: trailing data after the JSON object")
	}
	if m.Metrics.ExcludeStatuses == nil {
		m.Metrics.ExcludeStatuses = append([]string(nil), DefaultExcludeStatuses...)
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return m, nil
}

// Validate reports every problem of the mapping that needs no database:
// missing required names, malformed table names, unknown event keys.
func (m *Mapping) Validate() error {
	var errs []error
	seen := map[string]string{}
	for _, t := range m.tables() {
		if s, n, err := splitTable(t.table); err != nil {
			errs = append(errs, fmt.Errorf("mapping: %s.table: %w", t.key, err))
		} else if other, dup := seen[s+"."+n]; dup {
			errs = append(errs, fmt.Errorf("mapping: %s.table: %s.%s is already mapped as %s", t.key, s, n, other))
		} else {
			seen[s+"."+n] = t.key
		}
		for _, c := range t.cols {
			if c.name == "" && c.required {
				errs = append(errs, fmt.Errorf("mapping: %s.%s: a column name is required", t.key, c.key))
			}
		}
	}
	for name := range m.Events {
		known := false
		for _, e := range allEvents {
			known = known || e == name
		}
		if !known {
			errs = append(errs, fmt.Errorf("mapping: events: unknown event %q (known: %s)", name, strings.Join(allEvents, ", ")))
		}
	}
	if m.LowStockThreshold < 0 {
		errs = append(errs, fmt.Errorf("mapping: lowStockThreshold %d is negative", m.LowStockThreshold))
	}
	return errors.Join(errs...)
}

// Enabled reports whether event name is switched on.
func (m *Mapping) Enabled(name string) bool {
	on, ok := m.Events[name]
	return !ok || on
}

// Tables returns the mapped tables as "schema.table", for the publication
// (sql.Options.Tables).
func (m *Mapping) Tables() []string {
	var out []string
	for _, t := range m.tables() {
		s, n, _ := splitTable(t.table)
		out = append(out, s+"."+n)
	}
	return out
}

// FullIdentityTables returns the tables that need REPLICA IDENTITY FULL
// (orders and inventory: the Mapper compares old and new values).
func (m *Mapping) FullIdentityTables() []string {
	return m.Tables()[:2]
}

// CheckTables returns the tables for CheckConfig.Tables.
func (m *Mapping) CheckTables() []CheckTable {
	ts := m.Tables()
	out := make([]CheckTable, len(ts))
	for i, t := range ts {
		out[i] = CheckTable{Name: t, NeedFull: i < 2}
	}
	return out
}

type mappedColumn struct {
	key      string // JSON key in the mapping file
	name     string // column name
	required bool
}

type mappedTable struct {
	key   string // "orders", …
	table string
	cols  []mappedColumn
}

// tables lists the mapped tables in a fixed order: orders, inventory,
// variants, products.
func (m *Mapping) tables() []mappedTable {
	o, i, v, p := &m.Orders, &m.Inventory, &m.Variants, &m.Products
	return []mappedTable{
		{"orders", o.Table, []mappedColumn{
			{"id", o.ID, true}, {"orderNumber", o.OrderNumber, false}, {"userId", o.UserID, false},
			{"sellerId", o.SellerID, false}, {"status", o.Status, true}, {"total", o.Total, true},
			{"trackingNumber", o.TrackingNumber, false},
		}},
		{"inventory", i.Table, []mappedColumn{
			{"variantId", i.VariantID, true}, {"quantity", i.Quantity, true},
			{"reserved", i.Reserved, false}, {"lowStockThreshold", i.LowStockThreshold, false},
		}},
		{"variants", v.Table, []mappedColumn{
			{"id", v.ID, true}, {"productId", v.ProductID, true}, {"name", v.Name, false},
		}},
		{"products", p.Table, []mappedColumn{
			{"id", p.ID, true}, {"name", p.Name, false}, {"sellerId", p.SellerID, false},
		}},
	}
}

// splitTable splits "schema.table" or "table" (schema public).
func splitTable(s string) (schema, name string, err error) {
	schema, name, ok := strings.Cut(strings.TrimSpace(s), ".")
	if !ok {
		schema, name = "public", schema
	}
	if schema == "" || name == "" || strings.Contains(name, ".") {
		return "", "", fmt.Errorf("bad table name %q: want table or schema.table", s)
	}
	return schema, name, nil
}

// columnTypes restricts the types of the columns the Mapper computes with.
var (
	integerTypes = []string{"smallint", "integer", "bigint"}
	columnTypes  = map[string][]string{
		"inventory.quantity":          integerTypes,
		"inventory.reserved":          integerTypes,
		"inventory.lowStockThreshold": integerTypes,
		"orders.total":                {"smallint", "integer", "bigint", "numeric", "real", "double precision"},
	}
)

// validateCatalog checks every mapped table and column against the database
// and reports each one that is missing by name.
func (m *Mapping) validateCatalog(ctx context.Context, q Querier) error {
	var errs []error
	for _, t := range m.tables() {
		schema, name, err := splitTable(t.table)
		if err != nil {
			errs = append(errs, fmt.Errorf("mapping: %s.table: %w", t.key, err))
			continue
		}
		// The type of a domain column is its base type's.
		rows, err := q.Query(ctx, `SELECT a.attname::text,
				coalesce(nullif(t.typbasetype, 0), t.oid)::regtype::text
			FROM pg_catalog.pg_attribute a
			JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
			JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
			JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
			WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')
			  AND a.attnum > 0 AND NOT a.attisdropped`, schema, name)
		if err != nil {
			return fmt.Errorf("mapping: read catalog for %s.%s: %w", schema, name, err)
		}
		have := map[string]string{}
		for rows.Next() {
			var col, typ string
			if err := rows.Scan(&col, &typ); err != nil {
				rows.Close()
				return fmt.Errorf("mapping: read catalog for %s.%s: %w", schema, name, err)
			}
			have[col] = typ
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("mapping: read catalog for %s.%s: %w", schema, name, err)
		}
		if len(have) == 0 {
			errs = append(errs, fmt.Errorf("mapping: %s.table: table %s.%s not found in the database", t.key, schema, name))
			continue
		}
		for _, c := range t.cols {
			if c.name == "" {
				continue
			}
			typ, ok := have[c.name]
			if !ok {
				errs = append(errs, fmt.Errorf("mapping: %s.%s: column %q not found in table %s.%s", t.key, c.key, c.name, schema, name))
				continue
			}
			if want := columnTypes[t.key+"."+c.key]; want != nil && !slices.Contains(want, typ) {
				errs = append(errs, fmt.Errorf("mapping: %s.%s: column %s.%s.%s has type %s; want one of %s",
					t.key, c.key, schema, name, c.name, typ, strings.Join(want, ", ")))
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w:\n%w", ErrMappingMismatch, errors.Join(errs...))
	}
	return nil
}
