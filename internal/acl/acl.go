// Package acl holds the least-privilege ACL rules the README recommends, so
// that the tests which prove them and the README that quotes them cannot
// drift apart.
package acl

import "strings"

// Publisher is what a publishing service needs: PUBLISH on its channels,
// SET and DEL on its latest-state keys, nothing else.
const Publisher = "resetchannels &heartbeat:service:* resetkeys ~heartbeat:instance:* -@all +publish +set +del"

// Monitor is what the monitor needs: pattern-subscribe, and read-only access
// to the latest-state keys (STRLEN and PTTL size a key before GET reads it).
const Monitor = "resetchannels &heartbeat:service:* resetkeys %R~heartbeat:instance:* -@all +psubscribe +scan +strlen +pttl +get +ping"

// SetUser returns the ACL SETUSER command for user with password and rule,
// as arguments for a client's Do.
func SetUser(user, password, rule string) []any {
	args := []any{"ACL", "SETUSER", user, "on", ">" + password}
	for _, f := range strings.Fields(rule) {
		args = append(args, f)
	}
	return args
}
