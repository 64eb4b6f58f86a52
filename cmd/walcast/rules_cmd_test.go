package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/walcast/walcast/rooms"
	"github.com/walcast/walcast/rules"
)

// TestRules_Command: walcast rules prints the built-in rules, or the file
// WALCAST_RULES names, as JSON that parses back; a bad file fails with one
// line per problem.
func TestRules_Command(t *testing.T) {
	var out, errb strings.Builder
	if err := runRules(nil, envMap(nil), &out, &errb); err != nil {
		t.Fatalf("walcast rules: %v\n%s", err, errb.String())
	}
	var f struct{ Events []struct{ Event string } }
	if err := json.Unmarshal([]byte(out.String()), &f); err != nil || len(f.Events) != 7 || f.Events[0].Event != "product:stock-updated" {
		t.Fatalf("built-in rules output = %v, %d events:\n%.300s", err, len(f.Events), out.String())
	}
	out.Reset()
	env := map[string]string{"WALCAST_RULES": "../../testdata/e2e/custom_rules.json"}
	if err := runRules(nil, envMap(env), &out, &errb); err != nil || !strings.Contains(out.String(), `"shop.stock"`) {
		t.Fatalf("walcast rules with WALCAST_RULES = %v:\n%.300s", err, out.String())
	}
	bad := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(bad, []byte(`{"events": [{"event": "", "table": "t", "on": ["upsert"], "room": "r", "payload": "x"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	err := runRules([]string{"-rules", bad}, envMap(nil), &out, &errb)
	if err == nil || strings.Count(err.Error(), "\n") < 2 || !strings.Contains(err.Error(), "upsert") {
		t.Fatalf("bad rules file: err = %v, want one line per problem", err)
	}
}

// TestRoomKinds_Builtin: the built-in rules file's rooms are exactly the
// rooms policy's built-in kinds, so serving from the file changes nothing.
func TestRoomKinds_Builtin(t *testing.T) {
	r, err := rules.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	got, want := roomKinds(r), rooms.DefaultKinds(rooms.DefaultOrderOwnerQuery)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("roomKinds(builtin) =\n%+v\nwant rooms.DefaultKinds =\n%+v", got, want)
	}
}
