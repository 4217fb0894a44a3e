package panel

import (
	"net/url"
	"strings"
	"testing"
)

// A name from a heartbeat fills the path or the query of the operator's
// link, never where it goes: no dot segment to climb, no host to pick.
func TestAMetricsLinkGoesWhereTheOperatorSaid(t *testing.T) {
	const tpl = "https://g.example.com/d/{service_name}/x/{instance_id}/view?var-instance={instance_id}"
	if err := CheckMetricsLink(tpl); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"..", "."} {
		if got := fillLink(tpl, "svc", id); got != "" {
			t.Errorf("%q links to %q: a browser climbs it", id, got)
		}
		if got := fillLink(tpl, id, "i"); got != "" {
			t.Errorf("service %q links to %q", id, got)
		}
	}
	for _, id := range []string{"../../admin", "a/b?c#d&e=f", "%2e%2e", ".evil.net", "..x"} {
		got := fillLink(tpl, "svc", id)
		u, err := url.Parse(got)
		if err != nil || u.Host != "g.example.com" {
			t.Errorf("%q: %q goes to %v (%v)", id, got, u, err)
			continue
		}
		segs := strings.Split(u.EscapedPath(), "/")
		if len(segs) != 6 || segs[3] != "x" || segs[5] != "view" || strings.EqualFold(segs[4], "%2e%2e") || segs[4] == ".." {
			t.Errorf("%q: %q has the path segments %q", id, got, segs)
		}
		if v := u.Query().Get("var-instance"); v != id || len(u.Query()) != 1 {
			t.Errorf("%q: the query holds %v", id, u.Query())
		}
	}
	for _, bad := range []string{
		"https://example.com{instance_id}/",
		"https://{instance_id}/d",
		"https://{service_name}.example.com/d",
		"https://example.com:{instance_id}/d",
		"{service_name}://example.com/d",
	} {
		if err := CheckMetricsLink(bad); err == nil || !strings.Contains(err.Error(), "scheme, host or port") && !strings.Contains(err.Error(), "absolute") &&
			!strings.Contains(err.Error(), "scheme") {
			t.Errorf("%s: %v", bad, err)
		}
	}
}
