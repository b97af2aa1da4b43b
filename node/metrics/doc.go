// Package metrics counts what a node does and exposes it in the Prometheus
// text format (version 0.0.4) on an HTTP endpoint that is off by default.
//
// Counting is for hot paths: a Histogram observes with three atomic adds,
// no lock and no allocation. Rendering happens only when a scrape asks:
// Writer formats families and samples, Serve answers GET /metrics and
// nothing else, within timeouts and bounds on connections (in all and per
// remote address) and scrapes.
//
// It imports the standard library only, so that mesh, node/swim and node
// may all count into it.
package metrics
