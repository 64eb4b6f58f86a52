// Probe is the test's own component, rendered after the seed's components. It
// uses the seed's useSocket (so the same socket) and records on <body>:
// data-connects (connect events), data-recovered (socket.recovered at each
// connect, comma-separated), data-failed (socket.io-client gave up
// reconnecting) and data-synced (how many times, after a connect, an acked
// subscribe:product of an unrelated product came back). walcast runs one
// socket's events in order, so a synced count of n means the seed components'
// subscribe events of the n-th connection have been handled.
import { useEffect } from 'react'
import { useSocket } from '@/lib/socket'

const body = document.body.dataset
const bump = (key) => { body[key] = String(Number(body[key] || 0) + 1) }

export function Probe({ syncProduct }) {
  const { socket, isConnected } = useSocket(getAuthToken())

  useEffect(() => {
    if (!socket) return
    window.__socket = socket
    const onConnect = () => {
      bump('connects')
      body.recovered = (body.recovered ? body.recovered + ',' : '') + String(socket.recovered)
    }
    const onFailed = () => { body.failed = 'true' }
    socket.on('connect', onConnect)
    socket.io.on('reconnect_failed', onFailed)
    return () => {
      socket.off('connect', onConnect)
      socket.io.off('reconnect_failed', onFailed)
    }
  }, [socket])

  useEffect(() => {
    if (!socket || !isConnected) return
    socket.emit('subscribe:product', syncProduct, () => bump('synced'))
  }, [socket, isConnected, syncProduct])

  return <p id="conn" data-state={isConnected ? 'connected' : 'disconnected'}>{isConnected ? 'connected' : 'disconnected'}</p>
}
