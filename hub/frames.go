package hub

import "github.com/walcast/walcast/hub/packet"

// Constant frames, built once.
var (
	framePing  = []byte{packet.EnginePing}
	framePong  = []byte{packet.EnginePong}
	frameNoop  = []byte{packet.EngineNoop}
	frameClose = []byte{packet.EngineClose}
	frameProbe = []byte{packet.EnginePong}
	probePing  = []byte{packet.EnginePing}
)

func init() {
	frameProbe = append(frameProbe, packet.Probe...)
	probePing = append(probePing, packet.Probe...)
}

// ErrBadPacket is wrapped by every decoding error of client input.
var ErrBadPacket = packet.ErrBadPacket
