package cdc_test

import (
	"testing"

	"github.com/walcast/walcast/cdc"
)

// BenchmarkMapper_Map measures mapping one row change (no I/O): allocations
// per row are the event payload copies and room strings.
func BenchmarkMapper_Map(b *testing.B) {
	m, err := cdc.NewMapper(cdc.MapperConfig{Logger: mapperDiscardLogger()})
	if err != nil {
		b.Fatal(err)
	}
	seed := []*cdc.Change{
		{Op: cdc.OpInsert, Relation: mRelProducts, New: mTup("10000000-0000-4000-8000-000000000001", "Classic T-Shirt", "00000000-0000-4000-8000-000000000011")},
		{Op: cdc.OpInsert, Relation: mRelVariants, New: mTup("20000000-0000-4000-8000-000000000001", "10000000-0000-4000-8000-000000000001", "Small", "TS-S", "19.99")},
	}
	for _, c := range seed {
		if _, err := m.Map(nil, c); err != nil {
			b.Fatal(err)
		}
	}
	const vid = "20000000-0000-4000-8000-000000000001"
	order := func(status, tracking string) cdc.Tuple {
		return mTup("30000000-0000-4000-8000-000000000101", "ORD-2001", "00000000-0000-4000-8000-000000000101",
			"00000000-0000-4000-8000-000000000011", status, "59.97", tracking, "leave at the door", "2026-02-10 08:30:00.123+00")
	}
	cases := []struct {
		name string
		c    *cdc.Change
	}{
		{"inventory=stock", &cdc.Change{Op: cdc.OpUpdate, Relation: mRelInventory, Old: mTup(vid, "40", "2", "5"), New: mTup(vid, "39", "2", "5")}},
		{"inventory=crossing", &cdc.Change{Op: cdc.OpUpdate, Relation: mRelInventory, Old: mTup(vid, "10", "2", "5"), New: mTup(vid, "6", "2", "5")}},
		{"inventory=unchanged", &cdc.Change{Op: cdc.OpUpdate, Relation: mRelInventory, Old: mTup(vid, "10", "2", "5"), New: mTup(vid, "11", "3", "5")}},
		{"orders=insert", &cdc.Change{Op: cdc.OpInsert, Relation: mRelOrders, New: order("pending", "<null>")}},
		{"orders=status", &cdc.Change{Op: cdc.OpUpdate, Relation: mRelOrders, Old: order("pending", "<null>"), New: order("shipped", "1Z999AA10123456785")}},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			dst := make([]cdc.Event, 0, 8)
			var lsn cdc.LSN = 1 << 32
			for b.Loop() {
				lsn++
				tc.c.CommitLSN = lsn
				var err error
				dst, err = m.Map(dst[:0], tc.c)
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
