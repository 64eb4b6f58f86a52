'use client'

import { useEffect, useState } from 'react'
import { useSocket } from '@/lib/socket'

export function LiveMetrics({ initialMetrics }: {
  initialMetrics: {
    totalRevenue: number
    totalOrders: number
    averageOrderValue: number
  }
}) {
  const [metrics, setMetrics] = useState(initialMetrics)
  const { socket, isConnected } = useSocket(getAuthToken())

  useEffect(() => {
    if (!socket || !isConnected) return

    // Subscribe to metrics updates
    socket.emit('subscribe:metrics')

    // Listen for updates
    socket.on('admin:metrics-updated', (data) => {
      setMetrics(data.metrics)
    })

    return () => {
      socket.emit('unsubscribe:metrics')
      socket.off('admin:metrics-updated')
    }
  }, [socket, isConnected])

  return (
    <div className="grid grid-cols-3 gap-4">
      <div>
        <h3>Total Revenue</h3>
        <p className="text-2xl">${metrics.totalRevenue.toFixed(2)}</p>
      </div>
      <div>
        <h3>Total Orders</h3>
        <p className="text-2xl">{metrics.totalOrders}</p>
      </div>
      <div>
        <h3>Avg Order Value</h3>
        <p className="text-2xl">${metrics.averageOrderValue.toFixed(2)}</p>
      </div>
      {isConnected && <p className="col-span-3 text-green-500 text-sm">â— Live updates</p>}
    </div>
  )
}
