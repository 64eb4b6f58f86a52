// The storefront page: the seed's ProductStock and OrderTracking, unchanged,
// with the ids and initial values the test put in window.__SEED000.
import { createRoot } from 'react-dom/client'
import { ProductStock } from '../../seed000/storefront/components/ProductStock'
import { OrderTracking } from '../../seed000/storefront/components/OrderTracking'
import { Probe } from './probe.jsx'

const c = window.__SEED000
createRoot(document.getElementById('root')).render(
  <>
    <section id="stock">
      <ProductStock productId={c.productId} variantId={c.variantId} initialStock={c.initialStock} />
    </section>
    <section id="order">
      <OrderTracking orderId={c.orderId} initialStatus={c.initialStatus} />
    </section>
    <Probe syncProduct={c.syncProduct} />
  </>
)
