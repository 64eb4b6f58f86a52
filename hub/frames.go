package hub

import "github.com/walcast/walcast/hub/packet"

// Constant frames, built once.
var (
	framePing  = []byte{packet.EnginePing}
	framePong  = []byte{packet.EnginePong}
	frameNoop  = []byte{packet.EngineNoop}
	frameClose = []byte{packet.EngineClose}
	frameProbe = []byte(string(packet.EnginePong) + packet.Probe) // "3probe"
	probePing  = []byte(string(packet.EnginePing) + packet.Probe) // "2probe"
)

// ErrBadPacket is wrapped by every decoding error of client input.
var ErrBadPacket = packet.ErrBadPacket
