package cdc

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// variantInfo is what the Mapper keeps per variant.
type variantInfo struct {
	productID   string
	productJSON string // product id as JSON, as to_jsonb gives it (string or number)
	name        string
	hasName     bool
}

// productInfo is what the Mapper keeps per product.
type productInfo struct {
	name      string
	sellerID  string
	hasName   bool
	hasSeller bool
}

// lookups are the Mapper's caches: variant → product, product → name and
// seller. Keys are the ids' text forms. They are loaded by Mapper.Load and
// kept fresh from the variants and products changes in the stream.
type lookups struct {
	variants map[string]variantInfo
	products map[string]productInfo
}

func newLookups() lookups {
	return lookups{variants: map[string]variantInfo{}, products: map[string]productInfo{}}
}

// loadLookups reads variants and products with the mapping's names.
func loadLookups(ctx context.Context, q Querier, mp *Mapping) (lookups, error) {
	lk := newLookups()
	v := mp.Variants
	vt, err := tableIdent(v.Table)
	if err != nil {
		return lk, err
	}
	rows, err := q.Query(ctx, fmt.Sprintf("SELECT %s::text, %s::text, to_jsonb(%s)::text, %s FROM %s",
		colIdent(v.ID), colIdent(v.ProductID), colIdent(v.ProductID), optTextCol(v.Name), vt))
	if err != nil {
		return lk, fmt.Errorf("mapper: load variants from %s: %w", v.Table, err)
	}
	for rows.Next() {
		var id, pid, pjson, name *string
		if err := rows.Scan(&id, &pid, &pjson, &name); err != nil {
			rows.Close()
			return lk, fmt.Errorf("mapper: load variants from %s: %w", v.Table, err)
		}
		if id == nil || pid == nil || pjson == nil {
			continue
		}
		vi := variantInfo{productID: *pid, productJSON: *pjson}
		if name != nil {
			vi.name, vi.hasName = *name, true
		}
		lk.variants[*id] = vi
	}
	if err := rows.Err(); err != nil {
		return lk, fmt.Errorf("mapper: load variants from %s: %w", v.Table, err)
	}

	p := mp.Products
	pt, err := tableIdent(p.Table)
	if err != nil {
		return lk, err
	}
	rows, err = q.Query(ctx, fmt.Sprintf("SELECT %s::text, %s, %s FROM %s",
		colIdent(p.ID), optTextCol(p.Name), optTextCol(p.SellerID), pt))
	if err != nil {
		return lk, fmt.Errorf("mapper: load products from %s: %w", p.Table, err)
	}
	for rows.Next() {
		var id, name, seller *string
		if err := rows.Scan(&id, &name, &seller); err != nil {
			rows.Close()
			return lk, fmt.Errorf("mapper: load products from %s: %w", p.Table, err)
		}
		if id == nil {
			continue
		}
		var pi productInfo
		if name != nil {
			pi.name, pi.hasName = *name, true
		}
		if seller != nil {
			pi.sellerID, pi.hasSeller = *seller, true
		}
		lk.products[*id] = pi
	}
	if err := rows.Err(); err != nil {
		return lk, fmt.Errorf("mapper: load products from %s: %w", p.Table, err)
	}
	return lk, nil
}

// tableIdent quotes a mapping table name for SQL.
func tableIdent(t string) (string, error) {
	s, n, err := splitTable(t)
	if err != nil {
		return "", fmt.Errorf("mapper: %w", err)
	}
	return pgx.Identifier{s, n}.Sanitize(), nil
}

func colIdent(c string) string { return pgx.Identifier{c}.Sanitize() }

// optTextCol selects an optional column as text, or NULL when unmapped.
func optTextCol(c string) string {
	if c == "" {
		return "NULL::text"
	}
	return colIdent(c) + "::text"
}

// applyVariant keeps the variants cache fresh from a change of the variants
// table. Called with the Mapper's lock held.
func (lk *lookups) applyVariant(c *Change, ri *relInfo) {
	if c.Op == OpDelete || c.Op == OpUpdate {
		// Under DEFAULT identity the old key tuple is only sent when the key
		// changed; then it holds the old id.
		if id, ok := textCol(c.Old, ri.idx[vID]); ok && c.Op == OpDelete || ok && !sameCol(c.Old, c.New, ri.idx[vID]) {
			delete(lk.variants, string(id))
		}
	}
	if c.Op == OpDelete {
		return
	}
	id, ok := textCol(c.New, ri.idx[vID])
	if !ok {
		return
	}
	pid, ok := textCol(c.New, ri.idx[vProductID])
	if !ok {
		// Product unknown (NULL or not sent): forget the variant rather than
		// keep a stale product.
		delete(lk.variants, string(id))
		return
	}
	vi := lk.variants[string(id)]
	if string(pid) != vi.productID {
		col := ri.idx[vProductID]
		vi.productID = string(pid)
		vi.productJSON = string(appendValueJSON(nil, ri.oids[col], c.New[col]))
	}
	if ri.idx[vName] >= 0 {
		switch v := colValue(c.New, ri.idx[vName]); v.Kind {
		case ValueText:
			if !vi.hasName || vi.name != string(v.Data) {
				vi.name, vi.hasName = string(v.Data), true
			}
		case ValueNull:
			vi.name, vi.hasName = "", false
		}
	}
	lk.variants[string(id)] = vi
}

// applyProduct keeps the products cache fresh. Called with the lock held.
func (lk *lookups) applyProduct(c *Change, ri *relInfo) {
	if c.Op == OpDelete || c.Op == OpUpdate {
		if id, ok := textCol(c.Old, ri.idx[pID]); ok && c.Op == OpDelete || ok && !sameCol(c.Old, c.New, ri.idx[pID]) {
			delete(lk.products, string(id))
		}
	}
	if c.Op == OpDelete {
		return
	}
	id, ok := textCol(c.New, ri.idx[pID])
	if !ok {
		return
	}
	pi := lk.products[string(id)]
	if ri.idx[pName] >= 0 {
		switch v := colValue(c.New, ri.idx[pName]); v.Kind {
		case ValueText:
			if !pi.hasName || pi.name != string(v.Data) {
				pi.name, pi.hasName = string(v.Data), true
			}
		case ValueNull:
			pi.name, pi.hasName = "", false
		}
	}
	if ri.idx[pSellerID] >= 0 {
		switch v := colValue(c.New, ri.idx[pSellerID]); v.Kind {
		case ValueText:
			if !pi.hasSeller || pi.sellerID != string(v.Data) {
				pi.sellerID, pi.hasSeller = string(v.Data), true
			}
		case ValueNull:
			pi.sellerID, pi.hasSeller = "", false
		}
	}
	lk.products[string(id)] = pi
}

// loadTypes maps every domain type to its base type (one level; the Mapper
// follows chains) and every array type to its element type.
func loadTypes(ctx context.Context, q Querier) (domains, arrays map[uint32]uint32, err error) {
	rows, err := q.Query(ctx, `SELECT oid::int8, typtype = 'd', CASE WHEN typtype = 'd' THEN typbasetype ELSE typelem END::int8
		FROM pg_catalog.pg_type WHERE typtype = 'd' OR (typcategory = 'A' AND typelem <> 0)`)
	if err != nil {
		return nil, nil, fmt.Errorf("mapper: load domain and array types: %w", err)
	}
	defer rows.Close()
	domains, arrays = map[uint32]uint32{}, map[uint32]uint32{}
	for rows.Next() {
		var oid, other int64
		var domain bool
		if err := rows.Scan(&oid, &domain, &other); err != nil {
			return nil, nil, fmt.Errorf("mapper: load domain and array types: %w", err)
		}
		if domain {
			domains[uint32(oid)] = uint32(other)
		} else {
			arrays[uint32(oid)] = uint32(other)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("mapper: load domain and array types: %w", err)
	}
	return domains, arrays, nil
}
