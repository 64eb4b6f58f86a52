package rooms

// Room names of the catalogue (see the package doc).
const (
	RoomAdmin   = "admin:room"
	RoomMetrics = "admin:metrics"
)

// MaxRoomIDLen is the longest room id a client may send.
const MaxRoomIDLen = 64

// RoomUser is the room of every socket of user id.
func RoomUser(id string) string { return "user:" + id }

// RoomCart is the cart-sync room of user id.
func RoomCart(id string) string { return "cart:" + id }

// RoomSeller is the room of seller id.
func RoomSeller(id string) string { return "seller:" + id }

// RoomProduct is the stock room of product id.
func RoomProduct(id string) string { return "product:" + id }

// RoomOrder is the status room of order id.
func RoomOrder(id string) string { return "order:" + id }

// ValidRoomID reports whether id is acceptable as a client-sent room id: a
// UUID or a short slug, i.e. 1 to 64 of [A-Za-z0-9_-] (a UUID is such a
// slug). Nothing else: no dots, slashes, colons, spaces or other bytes.
func ValidRoomID(id string) bool {
	if len(id) == 0 || len(id) > MaxRoomIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}
