package packet

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/walcast/walcast/internal/jsonw"
)

func raws(ss ...string) []json.RawMessage {
	out := make([]json.RawMessage, len(ss))
	for i, s := range ss {
		out[i] = json.RawMessage(s)
	}
	return out
}

// TestAppendAdapterMessage_NodeBytes checks the exact bytes the Node adapter
// produces for io.to("room1").emit("news","hello",{n:1}).
func TestAppendAdapterMessage_NodeBytes(t *testing.T) {
	const want = "93a6356c35363973" + "83a474797065" + "02a464617461" + "93a46e657773a568656c6c6f" + "81a16e01" +
		"a36e7370a12f" + "83a5726f6f6d7391a5726f6f6d31a6657863657074" + "90a5666c61677380"
	m := &AdapterMessage{UID: "5l569s", Rooms: []string{"room1"}, Event: "news", Args: raws(`"hello"`, `{"n":1}`)}
	got, err := AppendAdapterMessage(nil, m)
	if err != nil {
		t.Fatalf("AppendAdapterMessage: %v", err)
	}
	if hex.EncodeToString(got) != want {
		t.Fatalf("AppendAdapterMessage bytes:\n got %x\nwant %s", got, want)
	}
}

// TestParseAdapterMessage_Node decodes bytes written by the Node adapter and
// emitter.
func TestParseAdapterMessage_Node(t *testing.T) {
	// emitter: ["emitter",{"type":2,"data":["adm",1],"nsp":"/admin"},{"rooms":[],"flags":{},"except":[]}]
	data, _ := hex.DecodeString("93a7656d6974746572" + "83a47479706502a46461746192a361646d01a36e7370a62f61646d696e" +
		"83a5726f6f6d7390a5666c61677380a6657863657074" + "90")
	m, err := ParseAdapterMessage(data)
	if err != nil {
		t.Fatalf("ParseAdapterMessage: %v", err)
	}
	if m.UID != "emitter" || m.Namespace != "/admin" || m.Event != "adm" || len(m.Args) != 1 || string(m.Args[0]) != "1" {
		t.Fatalf("ParseAdapterMessage = %+v", m)
	}
	// A Date (timestamp ext -1, 8-byte form) becomes its ISO string.
	// opts absent: rooms/except default to none.
	data, _ = hex.DecodeString("92a175" + "83a47479706502a46461746192a164" + "d7ff0000000065920080" + "a36e7370a12f")
	m, err = ParseAdapterMessage(data)
	if err != nil {
		t.Fatalf("ParseAdapterMessage(date): %v", err)
	}
	if got := string(m.Args[0]); got != `"2024-01-01T00:00:00.000Z"` {
		t.Fatalf("date arg = %s, want \"2024-01-01T00:00:00.000Z\"", got)
	}
}

func TestParseAdapterMessage_Bad(t *testing.T) {
	for _, h := range []string{
		"", "c1", "93", "90", "92a161c0", "93a1618081a474797065" + "03",
		"dd7fffffff", "df7fffffff", "db7fffffff61",
		// data ok but offset flag mismatched
		"93a1758383a47479706502a46461746192a165a178a36e7370a12f81a5666c61677381ad77616c636173744f6666736574a179",
	} {
		data, _ := hex.DecodeString(h)
		if _, err := ParseAdapterMessage(data); err == nil {
			t.Errorf("ParseAdapterMessage(%s) = nil error, want an error", h)
		}
	}
}

func TestAdapterMessage_RoundTrip(t *testing.T) {
	ct := time.UnixMicro(1_700_000_000_123_456)
	for _, m := range []*AdapterMessage{
		{UID: "u", Namespace: "/", Event: "all", Args: raws(`42`)},
		{UID: "u", Namespace: "/", Rooms: []string{"product:1"}, Event: "product:stock-updated",
			Args: raws(`{"variantId":"v1","available":3,"timestamp":1700000000123}`), Offset: "123456-0", CommitTime: ct},
		{UID: "u", Namespace: "/admin", Rooms: []string{"a", "b"}, Except: []string{"sid1"}, Event: "x",
			Args: raws(`[1,-2,3.5,"s",null,true,false,{"z":1,"a":[]}]`, `"é\u2028\n\"\\"`, `-9007199254740993`, `0.25`)},
		{UID: "u", Namespace: "/", Event: "bin", Args: raws(`{"_placeholder":true,"num":0}`, `{"f":{"_placeholder":true,"num":1}}`),
			Attachments: [][]byte{{1, 2, 3}, {}}},
		{UID: "u", Namespace: "/", Event: "m", Args: raws(`[`+strings.Repeat(`1,`, 40)+`1]`, `"`+strings.Repeat("x", 300)+`"`)},
		{UID: "u", Namespace: "/", Event: "ping", Args: []json.RawMessage{}},
	} {
		data, err := AppendAdapterMessage(nil, m)
		if err != nil {
			t.Fatalf("AppendAdapterMessage(%+v): %v", m, err)
		}
		got, err := ParseAdapterMessage(data)
		if err != nil {
			t.Fatalf("ParseAdapterMessage: %v", err)
		}
		if !reflect.DeepEqual(normalize(&got), normalize(m)) {
			t.Errorf("ParseAdapterMessage(AppendAdapterMessage(m)):\n got %+v\nwant %+v", normalize(&got), normalize(m))
		}
	}
	// An object shaped like a placeholder that names no attachment is data
	// (a row, or a walcast.emit payload, may hold it): it crosses as itself.
	// It used to be refused, and the refused broadcast failed every publish
	// of the leader's batch, again after each retry.
	for _, args := range []string{`{"_placeholder":true,"num":0}`, `{"_placeholder":true,"num":-1}`} {
		m := &AdapterMessage{UID: "u", Namespace: "/", Event: "e", Args: raws(args)}
		data, err := AppendAdapterMessage(nil, m)
		if err != nil {
			t.Fatalf("AppendAdapterMessage(%s) without attachments: %v", args, err)
		}
		got, err := ParseAdapterMessage(data)
		if err != nil {
			t.Fatalf("ParseAdapterMessage: %v", err)
		}
		if !reflect.DeepEqual(normalize(&got), normalize(m)) {
			t.Errorf("placeholder-shaped data %s:\n got %+v\nwant %+v", args, normalize(&got), normalize(m))
		}
	}
}

// normalize turns args into compact JSON strings for comparison.
func normalize(m *AdapterMessage) AdapterMessage {
	c := *m
	c.Args = nil
	for _, a := range m.Args {
		var v any
		d := json.NewDecoder(strings.NewReader(string(a)))
		d.UseNumber()
		if err := d.Decode(&v); err != nil {
			c.Args = append(c.Args, json.RawMessage("invalid:"+string(a)))
			continue
		}
		out, _ := json.Marshal(v)
		c.Args = append(c.Args, out)
	}
	if len(c.Attachments) == 0 {
		c.Attachments = nil
	}
	if !c.CommitTime.IsZero() {
		c.CommitTime = time.UnixMicro(c.CommitTime.UnixMicro())
	}
	return c
}

func FuzzAdapterMessage(f *testing.F) {
	seeds := []*AdapterMessage{
		{UID: "seed", Namespace: "/", Rooms: []string{"room1"}, Event: "news", Args: raws(`"hello"`, `{"n":1}`)},
		{UID: "seed", Namespace: "/", Event: "e", Args: raws(`{"_placeholder":true,"num":0}`), Attachments: [][]byte{{1}}, Offset: "1-2", CommitTime: time.UnixMicro(5)},
		{UID: "seed", Namespace: "/x", Except: []string{"a"}, Event: "e", Args: raws(`[1.5,null,{"a":"b"}]`)},
	}
	for _, m := range seeds {
		data, err := AppendAdapterMessage(nil, m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	emitter, _ := hex.DecodeString("93a7656d6974746572" + "83a47479706502a46461746192a361646d01a36e7370a62f61646d696e" +
		"83a5726f6f6d7390a5666c61677380a6657863657074" + "90")
	f.Add(emitter)
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseAdapterMessage(data)
		if err != nil {
			return
		}
		// Decoded messages re-encode, and a second trip is stable.
		enc1, err := AppendAdapterMessage(nil, &m)
		if err != nil {
			t.Fatalf("AppendAdapterMessage(decoded): %v", err)
		}
		m2, err := ParseAdapterMessage(enc1)
		if err != nil {
			t.Fatalf("ParseAdapterMessage(re-encoded): %v", err)
		}
		enc2, err := AppendAdapterMessage(nil, &m2)
		if err != nil {
			t.Fatalf("AppendAdapterMessage(second): %v", err)
		}
		m3, err := ParseAdapterMessage(enc2)
		if err != nil {
			t.Fatalf("ParseAdapterMessage(second): %v", err)
		}
		if !reflect.DeepEqual(normalize(&m2), normalize(&m3)) {
			t.Fatalf("second trip differs:\n%+v\n%+v", m2, m3)
		}
	})
}

// FuzzJSONToMsgpack: valid JSON transcodes, and decodes back to exactly its
// canonical form (jsonw.AppendCanonical: what the leader gives its own
// clients), so a client on another node gets the same bytes; anything else
// gives an error, never a panic.
func FuzzJSONToMsgpack(f *testing.F) {
	for _, s := range []string{`{"a":1,"b":[true,false,null],"c":"x\"y\u00e9\ud83d\ude00"}`, `-12.5e3`, `[]`, `{}`,
		`{"_placeholder":true,"num":0}`, `"\ud800"`, `9223372036854775808`, `[1,2`, `{"a" 1}`, `01`, "\"\x01\"",
		`[12.50,1.0,1e21,1e-7,0.000001,-0,-0.0,1e400,9007199254740993,123456789012345678901234567890]`,
		"{\"s\":\"a\\b\u2028z\\u0001<>&\xff\"}", `{"a": [1, 2], "b": {"c": "\/"}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		out, err := appendJSONAsMsgpack(nil, in, [][]byte{{7}})
		if !json.Valid(in) {
			if err == nil {
				t.Fatalf("appendJSONAsMsgpack(%q) succeeded, want an error for invalid JSON", in)
			}
			return
		}
		if err != nil {
			t.Fatalf("appendJSONAsMsgpack(%q) = %v, want success for valid JSON", in, err)
		}
		d := decoder{buf: out}
		var atts [][]byte
		back, err := d.transcode(nil, 0, &atts)
		if err != nil || d.off != len(out) {
			t.Fatalf("transcode(msgpack of %q): %v", in, err)
		}
		if len(atts) > 0 {
			return // a placeholder became a bin and back: compared in the round-trip tests
		}
		want, err := jsonw.AppendCanonical(nil, in)
		if err != nil {
			t.Fatalf("AppendCanonical(%q): %v", in, err)
		}
		if string(back) != string(want) {
			t.Fatalf("JSON -> msgpack -> JSON of %q gave %q, want the canonical form %q", in, back, want)
		}
	})
}

// FuzzMsgpackToJSON: any bytes either transcode to valid JSON or give a
// *DecodeError, never a panic; transcode and skip agree on where a value ends.
func FuzzMsgpackToJSON(f *testing.F) {
	for _, s := range []string{`{"a":1,"b":[true,false,null],"c":"x\"y\u00e9"}`, `[1.5,-3,"s",{"_placeholder":true,"num":0}]`, `9223372036854775808`} {
		b, err := appendJSONAsMsgpack(nil, []byte(s), [][]byte{{7}})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0xdd, 0xff, 0xff, 0xff, 0xff})                   // array of 4 G elements, 5 bytes
	f.Add([]byte{0x81, 0x92, 0x01, 0x02, 0x03})                   // map with an array key
	f.Add([]byte{0xd6, 0xff, 0x00, 0x00, 0x00, 0x01, 0xc4, 0x01}) // timestamp, truncated bin
	f.Fuzz(func(t *testing.T, in []byte) {
		d := decoder{buf: in}
		var atts [][]byte
		out, err := d.transcode(nil, 0, &atts)
		s := decoder{buf: in}
		serr := s.skip(0)
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("transcode(%x) = %v, want a *DecodeError", in, err)
			}
			if serr == nil && !strings.Contains(err.Error(), "map key") {
				t.Fatalf("transcode(%x) = %v but skip accepts it", in, err)
			}
			return
		}
		if serr != nil || s.off != d.off {
			t.Fatalf("skip(%x) = %v at %d, transcode ended at %d", in, serr, s.off, d.off)
		}
		if !json.Valid(out) {
			t.Fatalf("transcode(%x) = %q, not JSON", in, out)
		}
	})
}
