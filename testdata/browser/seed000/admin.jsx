// The admin page: the seed's OrderNotifications and LiveMetrics, unchanged;
// toasts land in #toasts (see sonner.js).
import { createRoot } from 'react-dom/client'
import { OrderNotifications } from '../../seed000/admin/components/OrderNotifications'
import { LiveMetrics } from '../../seed000/admin/components/LiveMetrics'
import { Probe } from './probe.jsx'

const c = window.__SEED000
createRoot(document.getElementById('root')).render(
  <>
    <section id="bell"><OrderNotifications /></section>
    <section id="metrics"><LiveMetrics initialMetrics={c.initialMetrics} /></section>
    <Probe syncProduct={c.syncProduct} />
  </>
)
