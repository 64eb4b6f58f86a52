package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/walcast/walcast/cdc/pgtest"
)

// TestTypes_Compile: `walcast types` on the demo database prints a
// declaration that a small socket.io-client program (testdata/types) compiles
// against with tsc --strict, wrong event names and fields included as
// expected errors; the marketplace rules without a database (unknown column
// types) compile too.
func TestTypes_Compile(t *testing.T) {
	needTool(t, "node")
	td, err := filepath.Abs(filepath.Join("..", "..", "testdata"))
	if err != nil {
		t.Fatal(err)
	}
	tsc := filepath.Join(td, "node_modules", "typescript", "bin", "tsc")
	if _, err := os.Stat(tsc); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("typescript is not installed (npm ci in testdata/): %v", err)
		}
		t.Skipf("typescript is not installed (npm ci in testdata/): %v", err)
	}
	pg := pgtest.New(t, pgtest.Options{})
	dbURL := pg.URL("postgres")
	if out, err := runCapture(t, map[string]string{"DATABASE_URL": dbURL}, "migrate", "-demo"); err != nil {
		t.Fatalf("migrate: %v\n%s", err, out)
	}
	compile := func(t *testing.T, env map[string]string, client string) string {
		var out, errb strings.Builder
		if err := runTypes(t.Context(), nil, envMap(env), &out, &errb); err != nil {
			t.Fatalf("walcast types: %v\n%s", err, errb.String())
		}
		dir := t.TempDir()
		files := map[string]string{
			"walcast-events.ts": out.String(),
			"client.ts":         client,
			"tsconfig.json": `{"compilerOptions": {"strict": true, "noEmit": true, "target": "es2020", "module": "es2020",
				"moduleResolution": "bundler", "types": [], "baseUrl": ".",
				"paths": {"socket.io-client": [` + jsonString(filepath.Join(td, "node_modules", "socket.io-client")) + `]}},
				"files": ["client.ts"]}`,
		}
		for name, body := range files {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		cmd := exec.CommandContext(t.Context(), "node", tsc, "-p", dir)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("tsc: %v\n%s\n--- walcast-events.ts:\n%s", err, b, out.String())
		}
		return out.String()
	}
	t.Run("Demo", func(t *testing.T) {
		client, err := os.ReadFile(filepath.Join(td, "types", "client.ts"))
		if err != nil {
			t.Fatal(err)
		}
		out := compile(t, map[string]string{"DATABASE_URL": dbURL}, string(client))
		if !strings.Contains(out, "variantId: string;") || !strings.Contains(out, `"subscribe:order": (id: string, ack?: (res: SubscribeAck) => void) => void;`) {
			t.Errorf("declaration lacks the typed fields or client events:\n%s", out)
		}
	})
	t.Run("MarketplaceNoDatabase", func(t *testing.T) {
		client := `import { io, Socket } from "socket.io-client";
import type { ServerToClientEvents, ClientToServerEvents } from "./walcast-events";
const socket: Socket<ServerToClientEvents, ClientToServerEvents> = io("http://localhost:3000");
socket.on("order:new", (p) => console.log(p.orderId, p.items[0].quantity));
socket.emit("subscribe:product", 42);
// @ts-expect-error the marketplace rules declare no metrics room
socket.emit("subscribe:metrics");
`
		compile(t, map[string]string{"WALCAST_RULES": "../../testdata/marketplace/rules.json"}, client)
	})
}

func jsonString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		if r == '"' || r == '\\' {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	b.WriteByte('"')
	return b.String()
}
