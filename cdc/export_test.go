package cdc

// Backoff exposes the reconnect delay function to tests.
var Backoff = backoff
