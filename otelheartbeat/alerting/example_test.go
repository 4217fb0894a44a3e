package alerting_test

import (
	"fmt"

	"github.com/otel-heartbeat/heartbeat/otelheartbeat/alerting"
)

// A configuration file is read into its typed schema, every mistake an
// error that names the line and the key; File.Options turns it into the
// Engine's options.
func ExampleParse() {
	f, err := alerting.Parse("alerts.yml", []byte(`
external_url: https://panel.example.com/
receivers:
  alertmanager: {urls: [http://am-1:9093, http://am-2:9093], resend_every: 1m}
rules:
  service_down: {for: 30s, min_alive: {geofence_service: 2}}
`))
	fmt.Println(err, len(f.Receivers.Alertmanager.URLs), f.Rules.ServiceDown.MinAlive["geofence_service"], len(f.Options()))

	_, err = alerting.Parse("alerts.yml", []byte(`
rules:
  instance_dead: {for: soon}
  service_dwn: {}
`))
	fmt.Println(err)
	// Output:
	// <nil> 2 2 6
	// alerts.yml line 3: rules.instance_dead.for: want a duration such as 30s or 1m, got "soon"
	// alerts.yml line 4: rules.service_dwn: unknown key (known here: instance_dead, instance_degraded, service_down, source_unreachable)
}
