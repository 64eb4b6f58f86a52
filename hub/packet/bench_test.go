package packet

import (
	"encoding/json"
	"testing"
)

// orderEvent is an admin order:created payload: nested objects and an array
// of line items, as the mapper writes them.
const orderEvent = `{"id":"5b1f0c9e-8a8e-4c1a-9a57-0d9f1c2b3a4d","status":"paid","customer":{"id":"00000000-0000-4000-8000-000000000101","name":"Ada Lovelace","email":"ada@example.test"},"items":[{"variantId":"8f2c2a9e-1d1b-4c53-9d1a-7d2f0c4f1a11","sku":"TEE-BLK-M","quantity":2,"unitPrice":19.99},{"variantId":"40000000-0000-4000-8000-000000000002","sku":"MUG-WHT","quantity":1,"unitPrice":12.5},{"variantId":"40000000-0000-4000-8000-000000000003","sku":"CAP-RED","quantity":3,"unitPrice":15}],"total":97.48,"currency":"EUR","createdAt":"2026-12-07T18:00:00.123Z","tags":["first-order","eu"],"note":null}`

func BenchmarkParseAdapterMessage(b *testing.B) {
	for _, c := range []struct{ name, arg string }{
		{"stock", `{"variantId":"8f2c2a9e-1d1b-4c53-9d1a-7d2f0c4f1a11","available":17,"timestamp":1700000000123}`},
		{"order", orderEvent},
	} {
		b.Run(c.name, func(b *testing.B) {
			data, err := AppendAdapterMessage(nil, &AdapterMessage{UID: "abcdef", Namespace: "/admin", Event: "order:created",
				Args: []json.RawMessage{json.RawMessage(c.arg)}, Rooms: []string{"admin"}, Offset: "123456789-3"})
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := ParseAdapterMessage(data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
