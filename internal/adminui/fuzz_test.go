package adminui_test

import (
	"encoding/json"
	"testing"

	"github.com/walcast/walcast/hub"
	"github.com/walcast/walcast/internal/adminui"
)

func newAdmin(t testing.TB) *adminui.Admin {
	srv, err := hub.New(hub.Config{})
	if err != nil {
		t.Fatal(err)
	}
	// A fixed bcrypt hash (cost 4) keeps the fuzz setup cheap.
	a, err := adminui.New(adminui.Config{Server: srv, Username: "admin", PasswordHash: "$2a$04$uoSVqC9uWm.9GEespD33mu0cZ/T7EiyVfVHDAaKCxRcDYW4oHq/vG"})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// FuzzSessionID: a session id from the network is accepted only when this
// node's key made it; anything else is refused without a panic.
func FuzzSessionID(f *testing.F) {
	a := newAdmin(f)
	good := a.NewSession()
	f.Add(good)
	f.Add("")
	f.Add("AAAA")
	f.Add(good[:len(good)-1] + "A")
	// The key comes from the credentials, so a fuzz worker (another
	// process, another second) makes other valid ids than good: the oracle
	// is the id this key makes for the expiry the input claims.
	f.Fuzz(func(t *testing.T, id string) {
		if a.ValidSession(id) && id != a.SessionUntil(id) {
			t.Fatalf("ValidSession(%q) accepted a session this node's key did not make", id)
		}
	})
}

// FuzzActionArgs: the UI's action arguments and other nodes' messages decode
// or are dropped, never panic.
func FuzzActionArgs(f *testing.F) {
	f.Add(`["/",false,"abc"]`)
	f.Add(`["/","room:a"]`)
	f.Add(`[{"kind":"disconnect","nsp":"/","filter":"x"}]`)
	f.Add(`["id","server",[{"id":"a"}]]`)
	f.Add(`[null,1,{}]`)
	f.Add(`[]`)
	a := newAdmin(f)
	f.Fuzz(func(t *testing.T, s string) {
		var args []json.RawMessage
		if json.Unmarshal([]byte(s), &args) != nil {
			return
		}
		var nsp, room string
		var closeConn bool
		adminui.UnmarshalArgs(args, &nsp, &closeConn, &room)
		for _, ev := range []string{"walcast:action", "walcast:sockets", "walcast:sockets?"} {
			a.Remote(&hub.Broadcast{Namespace: a.Namespace(), Rooms: []string{"walcast-admin#request"}, Event: ev, Args: args})
		}
		a.Remote(&hub.Broadcast{Namespace: a.Namespace(), Event: "server_stats", Args: args})
	})
}
