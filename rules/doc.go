// Package rules is walcast's rule engine: business events declared as data.
//
// A rules file (JSON) declares lookups (tables kept in memory by key),
// per-table derived values, joins and guards, and event rules: on which
// operations of which table, under which condition over the old and new row,
// which event goes to which room with which payload. Conditions, derived
// values, room and payload templates are written in a small expression
// language (see the comment at the top of expr.go). The shop catalogue of the
// demo schema is the built-in file, builtin.json, embedded in the binary.
//
// Parse compiles a file without a database and reports every problem, one
// line each, wrapped in ErrInvalid. Compiled expressions are evaluated
// against a change's tuples without allocating.
//
// Engine maps changes by compiled rules (row events, lookups, the order_totals
// aggregate, walcast.emit).
// The binary does not use it yet: cdc.Mapper still maps, and the built-in
// file gives the same events so that the Engine can replace it.
package rules
