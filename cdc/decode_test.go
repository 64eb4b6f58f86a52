package cdc_test

import (
	"encoding/binary"
	"errors"
	"testing"

	"github.com/walcast/walcast/cdc"
)

// pgoutput message builders, in the byte layout of the protocol docs
// ("Logical Replication Message Formats").

func be16(b []byte, v uint16) []byte { return binary.BigEndian.AppendUint16(b, v) }
func be32(b []byte, v uint32) []byte { return binary.BigEndian.AppendUint32(b, v) }
func be64(b []byte, v uint64) []byte { return binary.BigEndian.AppendUint64(b, v) }
func cstr(b []byte, s string) []byte { return append(append(b, s...), 0) }

func msgBegin(final uint64, xid uint32) []byte {
	return be32(be64(be64([]byte{'B'}, final), 815_000_000_000_000), xid)
}

func msgCommit(commit, end uint64) []byte {
	return be64(be64(be64([]byte{'C', 0}, commit), end), 815_000_000_000_000)
}

// tuple encodes columns: nil => 'n', "\x00u" => 'u', else 't' text.
func tuple(b []byte, cols ...[]byte) []byte {
	b = be16(b, uint16(len(cols)))
	for _, c := range cols {
		switch {
		case c == nil:
			b = append(b, 'n')
		case string(c) == "\x00u":
			b = append(b, 'u')
		default:
			b = append(be32(append(b, 't'), uint32(len(c))), c...)
		}
	}
	return b
}

func msgRelation(id uint32, ns, name string, cols ...string) []byte {
	b := cstr(cstr(be32([]byte{'R'}, id), ns), name)
	b = be16(append(b, 'f'), uint16(len(cols)))
	for i, c := range cols {
		flag := byte(0)
		if i == 0 {
			flag = 1
		}
		b = be32(be32(cstr(append(b, flag), c), 23), 0xffffffff)
	}
	return b
}

func decodeSeeds() [][]byte {
	ins := append(be32([]byte{'I'}, 16384), 'N')
	ins = tuple(ins, []byte("1"), nil, []byte("hello"))
	upd := tuple(append(be32([]byte{'U'}, 16384), 'O'), []byte("1"), nil, []byte("old"))
	upd = tuple(append(upd, 'N'), []byte("1"), []byte("x"), []byte("\x00u"))
	updNoOld := tuple(append(be32([]byte{'U'}, 16384), 'N'), []byte("1"), []byte("x"), []byte("\x00u"))
	del := tuple(append(be32([]byte{'D'}, 16384), 'K'), []byte("1"), nil, nil)
	msg := be32(cstr(be64([]byte{'M', 1}, 0x1D5CE78), "walcast.emit"), 5)
	msg = append(msg, "hello"...)
	trunc := be32(be32(append(be32([]byte{'T'}, 2), 0), 16384), 16390)
	typ := cstr(cstr(be32([]byte{'Y'}, 16396), "public"), "mood")
	return [][]byte{
		msgBegin(0x1D5CE78, 745),
		msgCommit(0x1D5CE78, 0x1D5CEA8),
		msgRelation(16384, "public", "item", "id", "name", "note"),
		ins, upd, updNoOld, del, msg, trunc, typ,
		{'O'}, {'B'}, {'I', 0, 0}, {'Z'}, {},
	}
}

func TestDecode(t *testing.T) {
	var m cdc.WireMessage
	for i, seed := range decodeSeeds()[:10] {
		if err := cdc.Decode(&m, seed); err != nil {
			t.Errorf("Decode(seed %d %q) = %v, want nil", i, seed[0], err)
		}
	}
	if err := cdc.Decode(&m, decodeSeeds()[4]); err != nil || m.OldKind != 'O' || len(m.Old) != 3 || len(m.New) != 3 ||
		m.New[2].Kind != cdc.ValueUnchanged || m.New[0].Kind != cdc.ValueText || string(m.Old[2].Data) != "old" || m.Old[1].Kind != cdc.ValueNull {
		t.Errorf("Decode(update) = %+v, %v", m, err)
	}
	if err := cdc.Decode(&m, decodeSeeds()[1]); err != nil || m.LSN != 0x1D5CE78 || m.EndLSN != 0x1D5CEA8 {
		t.Errorf("Decode(commit) = LSN %s end %s, %v; want 0/1D5CE78 0/1D5CEA8", m.LSN, m.EndLSN, err)
	}
	if err := cdc.Decode(&m, decodeSeeds()[7]); err != nil || !m.Transactional || m.Prefix != "walcast.emit" || string(m.Content) != "hello" {
		t.Errorf("Decode(message) = %+v, %v", m, err)
	}
	for _, bad := range [][]byte{{}, {'B', 1, 2}, {'I', 0, 0, 0x40, 0, 'N', 0xff, 0xff}, {'Z'}, {'R', 0}, append(decodeSeeds()[0], 0)} {
		err := cdc.Decode(&m, bad)
		var de *cdc.DecodeError
		if !errors.As(err, &de) {
			t.Errorf("Decode(%q) = %v, want *DecodeError", bad, err)
		}
	}
}

// FuzzDecode: Decode must return a message or an error, never panic, and a
// decoded row must only refer to bytes of its input.
func FuzzDecode(f *testing.F) {
	for _, s := range decodeSeeds() {
		f.Add(s)
	}
	var m cdc.WireMessage
	f.Fuzz(func(t *testing.T, data []byte) {
		err := cdc.Decode(&m, data)
		if err != nil {
			var de *cdc.DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("Decode error %T %v, want *DecodeError", err, err)
			}
			return
		}
		if m.Type != data[0] {
			t.Fatalf("Type = %q, want %q", m.Type, data[0])
		}
		total := 0
		for _, v := range append(append(cdc.Tuple(nil), m.Old...), m.New...) {
			total += len(v.Data)
		}
		if (m.Type == 'I' || m.Type == 'U' || m.Type == 'D') && total > len(data) {
			t.Fatalf("tuple data %d bytes from a %d-byte message", total, len(data))
		}
	})
}

// TestDecode_Allocs pins the row path at zero allocations: tuples reuse the
// WireMessage's slices and alias the input.
func TestDecode_Allocs(t *testing.T) {
	seeds := decodeSeeds()
	var m cdc.WireMessage
	for _, i := range []int{0, 1, 3, 4, 6} { // begin, commit, insert, update, delete
		msg := seeds[i]
		cdc.Decode(&m, msg) // grow the slices once
		if n := testing.AllocsPerRun(100, func() { cdc.Decode(&m, msg) }); n != 0 {
			t.Errorf("Decode(%q) allocates %v times, want 0", msg[0], n)
		}
	}
}
