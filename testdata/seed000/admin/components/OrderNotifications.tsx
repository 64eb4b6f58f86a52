'use client'

import { useEffect, useState } from 'react'
import { useSocket } from '@/lib/socket'
import { toast } from 'sonner'

export function OrderNotifications() {
  const { socket, isConnected } = useSocket(getAuthToken())
  const [newOrdersCount, setNewOrdersCount] = useState(0)

  useEffect(() => {
    if (!socket || !isConnected) return

    // Listen for new orders
    socket.on('admin:new-order', (data) => {
      setNewOrdersCount(prev => prev + 1)

      // Play notification sound
      const audio = new Audio('/notification.mp3')
      audio.play()

      // Show toast
      toast.success(`New Order: ${data.order.order_number}`, {
        description: `Total: $${data.order.total}`,
        action: {
          label: 'View',
          onClick: () => window.location.href = `/admin/orders/${data.order.id}`
        }
      })
    })

    // Listen for low stock alerts
    socket.on('admin:low-stock', (data) => {
      toast.warning('Low Stock Alert', {
        description: `${data.variant.product_name} - ${data.variant.name}: ${data.variant.available} left`
      })
    })

    return () => {
      socket.off('admin:new-order')
      socket.off('admin:low-stock')
    }
  }, [socket, isConnected])

  return (
    <div className="relative">
      ğŸ””
      {newOrdersCount > 0 && (
        <span className="absolute -top-1 -right-1 bg-red-500 text-white text-xs rounded-full w-5 h-5 flex items-center justify-center">
          {newOrdersCount}
        </span>
      )}
      {isConnected && <span className="text-green-500">â—</span>}
    </div>
  )
}
