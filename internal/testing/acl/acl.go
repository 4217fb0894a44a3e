// Package acl holds the least-privilege ACL rules docs/configuration.md recommends, so
// that the tests which prove them and the page that quotes them cannot
// drift apart.
package acl

import "strings"

// Publisher is what a publishing service needs: PUBLISH on its channels,
// SET and DEL on its latest-state keys, nothing else. It lets any holder
// publish as any service; PublisherFor confines one service to its own.
const Publisher = "resetchannels &heartbeat:service:* resetkeys ~heartbeat:instance:* -@all +publish +set +del"

// Monitor is what the monitor needs: pattern-subscribe, and read-only access
// to the latest-state keys (STRLEN and PTTL beside a GETRANGE bounded to a
// heartbeat's size: GET would read whatever a writer swapped in).
const Monitor = "resetchannels &heartbeat:service:* resetkeys %R~heartbeat:instance:* -@all +psubscribe +scan +strlen +pttl +getrange +ping"

// ShardedMonitor is what the monitor needs in sharded mode (--sharded):
// read the registry, learn the slot map, SSUBSCRIBE on each primary, and
// read the latest-state keys.
const ShardedMonitor = "resetchannels &heartbeat:service:* resetkeys %R~heartbeat:instance:* %R~heartbeat:services -@all +ssubscribe +smembers +cluster|slots +scan +strlen +pttl +getrange +ping"

// Name is the placeholder for the service name in the per-service rules as
// the page prints them.
const Name = "NAME"

// PublisherFor is the rule for one service's publishers: PUBLISH on that
// service's channel only, SET and DEL on that service's latest-state keys
// only. A holder cannot publish on, write or delete another service's
// channel or keys, so it cannot forge another service's "stopping"
// heartbeat. The ':' after the name in the key pattern keeps "tracker"
// from matching "tracker_fetcher"'s keys. Service names cannot hold glob
// characters, so the name is matched literally.
func PublisherFor(service string) string {
	return "resetchannels &heartbeat:service:" + service + " resetkeys ~heartbeat:instance:" + service + ":* -@all +publish +set +del"
}

// ShardedPublisherFor is PublisherFor for sharded mode: SPUBLISH instead of
// PUBLISH, the slot map for the cluster client, and, through a selector,
// SADD on the registry set heartbeat:services and nothing else on it.
func ShardedPublisherFor(service string) string {
	return "resetchannels &heartbeat:service:" + service + " resetkeys ~heartbeat:instance:" + service + ":* -@all +spublish +set +del +cluster|slots (~heartbeat:services +sadd)"
}

// SetUser returns the ACL SETUSER command for user with password and rule,
// as arguments for a client's Do. A selector in parentheses is one
// argument, as redis-cli needs it quoted.
func SetUser(user, password, rule string) []any {
	args := []any{"ACL", "SETUSER", user, "on", ">" + password}
	for _, f := range Args(rule) {
		args = append(args, f)
	}
	return args
}

// Args splits rule into ACL SETUSER arguments: at spaces, except inside a
// selector's parentheses.
func Args(rule string) []string {
	var out []string
	for rest := strings.TrimSpace(rule); rest != ""; rest = strings.TrimSpace(rest) {
		end := strings.IndexByte(rest, ' ')
		if rest[0] == '(' {
			end = strings.IndexByte(rest, ')') + 1
		}
		if end <= 0 {
			end = len(rest)
		}
		out = append(out, rest[:end])
		rest = rest[end:]
	}
	return out
}

// CLI returns rule as it is typed into redis-cli: a selector, which holds
// a space, in double quotes.
func CLI(rule string) string {
	args := Args(rule)
	for i, a := range args {
		if strings.HasPrefix(a, "(") {
			args[i] = `"` + a + `"`
		}
	}
	return strings.Join(args, " ")
}
