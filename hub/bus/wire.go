package bus

import (
	"github.com/walcast/walcast/hub"
	"github.com/walcast/walcast/hub/packet"
)

// The bus speaks the @socket.io/redis-adapter (classic pub/sub) format, whose
// message codec is packet.AppendAdapterMessage and packet.ParseAdapterMessage:
//
//	channel  <prefix>#<nsp>#            broadcast to all sockets or to several rooms
//	         <prefix>#<nsp>#<room>#     broadcast to exactly one room

// channelFor returns the channel a broadcast is published on.
func channelFor(prefix string, b *hub.Broadcast) string {
	nsp := packet.Namespace(b.Namespace)
	if len(b.Rooms) == 1 {
		return prefix + "#" + nsp + "#" + b.Rooms[0] + "#"
	}
	return prefix + "#" + nsp + "#"
}

// appendMessage appends the adapter message for b, sent by uid, to dst.
func appendMessage(dst []byte, uid string, b *hub.Broadcast) ([]byte, error) {
	return packet.AppendAdapterMessage(dst, &packet.AdapterMessage{
		UID: uid, Namespace: b.Namespace, Event: b.Event, Args: b.Args, Attachments: b.Attachments,
		Rooms: b.Rooms, Except: b.Except, Offset: b.Offset, CommitTime: b.CommitTime,
	})
}

// message is a decoded bus message.
type message struct {
	uid string
	b   *hub.Broadcast
}

// decodeMessage decodes one adapter or emitter message. The returned
// broadcast does not alias data; errors are *packet.DecodeError.
func decodeMessage(data []byte) (message, error) {
	m, err := packet.ParseAdapterMessage(data)
	if err != nil {
		return message{}, err
	}
	return message{uid: m.UID, b: &hub.Broadcast{
		Namespace: m.Namespace, Event: m.Event, Args: m.Args, Attachments: m.Attachments,
		Rooms: m.Rooms, Except: m.Except, Offset: m.Offset, CommitTime: m.CommitTime,
	}}, nil
}
