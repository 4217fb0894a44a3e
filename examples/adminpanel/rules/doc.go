// Package rules holds Prometheus alerting rules on the admin panel's
// liveness metrics, heartbeat.rules.yml, for teams that alert from
// Prometheus rather than from the panel, and their promtool unit tests,
// heartbeat.rules.test.yml. Its Go test runs promtool on both, so the
// rules are checked with everything else.
package rules
