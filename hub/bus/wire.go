package bus

import (
	"errors"

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

// socketIDLen is the length of a socket id: createShardedAdapter publishes a
// broadcast to one room of that length on the namespace's channel.
const socketIDLen = 20

// shardedChannel returns the channel a broadcast is SPUBLISHed on in sharded
// mode, as createShardedAdapter computes it in "dynamic" mode:
// <prefix>#<nsp>#<room># for exactly one room, <prefix>#<nsp># otherwise.
func shardedChannel(prefix string, b *hub.Broadcast) string {
	nsp := packet.Namespace(b.Namespace)
	if len(b.Rooms) == 1 && len(b.Rooms[0]) != socketIDLen {
		return prefix + "#" + nsp + "#" + b.Rooms[0] + "#"
	}
	return prefix + "#" + nsp + "#"
}

// encode appends the bus message for b in this bus's format.
func (r *Redis) encode(dst []byte, b *hub.Broadcast) ([]byte, error) {
	if !r.cfg.Sharded {
		return appendMessage(dst, r.cfg.UID, b)
	}
	return packet.AppendClusterBroadcast(dst, &packet.AdapterMessage{
		UID: r.cfg.UID, Namespace: b.Namespace, Event: b.Event, Args: b.Args, Attachments: b.Attachments,
		Rooms: b.Rooms, Except: b.Except, Offset: b.Offset, CommitTime: b.CommitTime,
	})
}

// decodeMessage decodes one classic adapter or emitter message, or (as the
// recovery stream of a sharded bus holds) a ClusterAdapter BROADCAST. The
// returned broadcast does not alias data; errors are *packet.DecodeError.
func decodeMessage(data []byte) (message, error) {
	if len(data) > 0 && (data[0] == '{' || data[0]&0xf0 == 0x80 || data[0] == 0xde || data[0] == 0xdf) {
		cm, err := packet.ParseClusterMessage(data)
		if err != nil {
			return message{}, err
		}
		if cm.Type != packet.ClusterBroadcast {
			return message{}, &packet.DecodeError{Err: errors.New("not a broadcast")}
		}
		return fromAdapter(cm.Broadcast), nil
	}
	m, err := packet.ParseAdapterMessage(data)
	if err != nil {
		return message{}, err
	}
	return fromAdapter(m), nil
}

func fromAdapter(m packet.AdapterMessage) message {
	return message{uid: m.UID, b: &hub.Broadcast{
		Namespace: m.Namespace, Event: m.Event, Args: m.Args, Attachments: m.Attachments,
		Rooms: m.Rooms, Except: m.Except, Offset: m.Offset, CommitTime: m.CommitTime,
	}}
}
