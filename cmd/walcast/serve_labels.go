package main

import (
	"slices"

	"github.com/walcast/walcast/cdc"
	"github.com/walcast/walcast/rooms"
	"github.com/walcast/walcast/rules"
)

// metricEventNames are the event names that get their own series in the
// per-event metrics (walcast_cdc_events_in_total, walcast_hub_events_out_total):
// the catalogue's events, the rules file's when one is configured, and the
// events walcast itself sends. Any other name, such as one chosen in a
// walcast.emit call, is counted as "other", so SQL cannot add series.
func metricEventNames(c config) ([]string, error) {
	names := []string{
		cdc.EventStockUpdated, cdc.EventAdminLowStock, cdc.EventAdminNewOrder, cdc.EventOrderStatusChanged,
		cdc.EventMetricsUpdated, cdc.EventOrderStatus, cdc.EventOrderNew, cdc.EventInventoryLowStock,
		cdc.EventNotification, rooms.EventCartSynced,
	}
	if c.Rules != "" {
		r, err := rules.Load(c.Rules)
		if err != nil {
			return nil, err
		}
		for _, e := range r.File.Events {
			names = append(names, e.Event)
		}
		for name := range r.File.Aggregates {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return slices.Compact(names), nil
}
