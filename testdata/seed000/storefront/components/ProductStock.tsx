'use client'

import { useEffect, useState } from 'react'
import { useSocket } from '@/lib/socket'

export function ProductStock({
  productId,
  variantId,
  initialStock
}: {
  productId: string
  variantId: string
  initialStock: number
}) {
  const [stock, setStock] = useState(initialStock)
  const { socket, isConnected } = useSocket(getAuthToken())

  useEffect(() => {
    if (!socket || !isConnected) return

    // Subscribe to product updates
    socket.emit('subscribe:product', productId)

    // Listen for stock updates
    socket.on('product:stock-updated', (data) => {
      if (data.variantId === variantId) {
        setStock(data.available)
      }
    })

    return () => {
      socket.emit('unsubscribe:product', productId)
      socket.off('product:stock-updated')
    }
  }, [socket, isConnected, productId, variantId])

  return (
    <div>
      {stock > 0 ? (
        <p className="text-green-600">
          {stock} in stock {isConnected && 'ğŸ”´'}
        </p>
      ) : (
        <p className="text-red-600">Out of stock</p>
      )}
    </div>
  )
}
