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
// This package does not yet map changes: cdc.Mapper still does, and the
// built-in file describes what it does so that the engine can replace it.
package rules
