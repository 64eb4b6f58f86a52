'use client'

import { io, Socket } from 'socket.io-client'
import { useEffect, useState } from 'react'

let socket: Socket | null = null

export function getSocket(token: string): Socket {
  if (!socket || !socket.connected) {
    socket = io(process.env.NEXT_PUBLIC_API_URL || 'http://localhost:3001', {
      auth: { token },
      transports: ['websocket', 'polling'],
      autoConnect: true,
      reconnection: true,
      reconnectionAttempts: 5,
      reconnectionDelay: 1000
    })

    socket.on('connect', () => {
      console.log('âœ… Connected to WebSocket')
    })

    socket.on('disconnect', (reason) => {
      console.log('âŒ Disconnected:', reason)
    })

    socket.on('connect_error', (error) => {
      console.error('Connection error:', error)
    })
  }

  return socket
}

export function disconnectSocket() {
  if (socket) {
    socket.disconnect()
    socket = null
  }
}

// React hook for WebSocket
export function useSocket(token: string | null) {
  const [isConnected, setIsConnected] = useState(false)
  const [socketInstance, setSocketInstance] = useState<Socket | null>(null)

  useEffect(() => {
    if (!token) return

    const sock = getSocket(token)
    setSocketInstance(sock)

    const onConnect = () => setIsConnected(true)
    const onDisconnect = () => setIsConnected(false)

    sock.on('connect', onConnect)
    sock.on('disconnect', onDisconnect)

    return () => {
      sock.off('connect', onConnect)
      sock.off('disconnect', onDisconnect)
    }
  }, [token])

  return { socket: socketInstance, isConnected }
}
