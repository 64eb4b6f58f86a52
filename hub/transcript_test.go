package hub_test

import (
	"bufio"
	"context"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/walcast/walcast/hub"
	"github.com/walcast/walcast/hub/hubtest"
)

var update = flag.Bool("update", false, "rewrite hub/testdata/transcripts/*.txt from the server's answers")

// Transcripts are WebSocket sessions, one frame per line: "> " client to
// server, "< " server to client, "<b " / ">b " a binary frame in hex, "# "
// a comment, "<closed" the server closed the connection. Random ids are
// normalised to <sid>/<pid>.
var idRE = regexp.MustCompile(`"(sid|pid)":"[A-Za-z0-9_-]{20}"`)

func normalise(s string) string { return idRE.ReplaceAllString(s, `"$1":"<$1>"`) }

func transcriptServer(t *testing.T) string {
	srv, ts := hubtest.NewServer(t, hub.Config{PingInterval: time.Hour, Logger: hubLogger(t)})
	handlers := func(s *hub.Socket) {
		s.Emit("auth", s.Handshake().Auth)
		s.On("message", func(s *hub.Socket, m *hub.Message) { s.EmitRaw("message-back", m.Args, m.Attachments) })
		s.On("message-with-ack", func(s *hub.Socket, m *hub.Message) { m.AckRaw(m.Args, m.Attachments) })
		s.On("server-ack", func(s *hub.Socket, m *hub.Message) {
			go s.EmitWithAck(context.Background(), "question", 42)
		})
		s.On("kick", func(s *hub.Socket, m *hub.Message) { s.Disconnect() })
	}
	srv.Of("/").OnConnect(handlers)
	srv.Of("/custom").OnConnect(handlers)
	srv.Of("/private").Use(func(ctx context.Context, h *hub.Handshake) error {
		return &hub.ConnectError{Message: "not authorized", Data: map[string]any{"reason": "no token"}}
	})
	return "ws" + strings.TrimPrefix(ts.URL, "http") + "/socket.io/?EIO=4&transport=websocket"
}

func TestTranscripts(t *testing.T) {
	files, _ := filepath.Glob("testdata/transcripts/*.txt")
	if len(files) == 0 {
		t.Fatal("no transcripts")
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txt"), func(t *testing.T) {
			url := transcriptServer(t)
			ws, _, err := websocket.DefaultDialer.Dial(url, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer ws.Close()
			f, err := os.Open(file)
			if err != nil {
				t.Fatal(err)
			}
			var out []string
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				line := sc.Text()
				switch {
				case strings.HasPrefix(line, "> "):
					ws.WriteMessage(websocket.TextMessage, []byte(line[2:]))
					out = append(out, line)
				case strings.HasPrefix(line, ">b "):
					ws.WriteMessage(websocket.BinaryMessage, unhex(t, line[3:]))
					out = append(out, line)
				case strings.HasPrefix(line, "<"):
					ws.SetReadDeadline(time.Now().Add(3 * time.Second))
					mt, msg, err := ws.ReadMessage()
					var got string
					switch {
					case err != nil:
						got = "<closed"
					case mt == websocket.BinaryMessage:
						got = "<b " + hexs(msg)
					default:
						got = "< " + normalise(string(msg))
					}
					if got != line && !*update {
						t.Errorf("%s: got %s, want %s", file, got, line)
					}
					out = append(out, got)
				default:
					out = append(out, line)
				}
			}
			f.Close()
			if *update {
				os.WriteFile(file, []byte(strings.Join(out, "\n")+"\n"), 0o644)
			}
		})
	}
}

func hexs(b []byte) string {
	const d = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, d[c>>4], d[c&15])
	}
	return string(out)
}

func unhex(t *testing.T, s string) []byte {
	var out []byte
	for i := 0; i+1 < len(s); i += 2 {
		var v byte
		for _, c := range s[i : i+2] {
			v <<= 4
			switch {
			case c >= '0' && c <= '9':
				v |= byte(c - '0')
			case c >= 'a' && c <= 'f':
				v |= byte(c-'a') + 10
			default:
				t.Fatalf("bad hex %q", s)
			}
		}
		out = append(out, v)
	}
	return out
}
