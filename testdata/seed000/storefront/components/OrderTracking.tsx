'use client'

import { useEffect, useState } from 'react'
import { useSocket } from '@/lib/socket'

export function OrderTracking({ orderId, initialStatus }: {
  orderId: string
  initialStatus: string
}) {
  const [status, setStatus] = useState(initialStatus)
  const [trackingNumber, setTrackingNumber] = useState<string>()
  const { socket, isConnected } = useSocket(getAuthToken())

  useEffect(() => {
    if (!socket || !isConnected) return

    // Subscribe to order updates
    socket.emit('subscribe:order', orderId)

    // Listen for status changes
    socket.on('order:status-changed', (data) => {
      if (data.orderId === orderId) {
        setStatus(data.status)
        setTrackingNumber(data.trackingNumber)
      }
    })

    return () => {
      socket.emit('unsubscribe:order', orderId)
      socket.off('order:status-changed')
    }
  }, [socket, isConnected, orderId])

  return (
    <div>
      <p>Status: <strong>{status}</strong> {isConnected && 'ğŸŸ¢'}</p>
      {trackingNumber && (
        <p>Tracking: {trackingNumber}</p>
      )}
    </div>
  )
}
