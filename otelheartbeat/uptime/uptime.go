// Package uptime computes uptime, incidents, restarts and lost heartbeats
// of a service over a window, from its recorded history.
//
// An instance is up while alive or stale (its heartbeat is late, not yet
// missing for three intervals), down while dead, and planned while stopped
// gracefully. A service is up while at least MinAlive of its instances are
// up, planned while every instance it has is stopped, and down otherwise.
// Time no recorder watched (history gaps) is unknown: neither up nor down.
// Uptime is up / (up + down); planned and unknown time are left out of
// both, so a deploy or a panel outage never counts as downtime.
package uptime

import (
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/otel-heartbeat/heartbeat/otelheartbeat/history"
)

// Window is the span a report covers.
type Window struct{ From, To time.Time }

// Times is how a span divides.
type Times struct {
	Up, Down, Planned, Unknown time.Duration
}

// Uptime returns Up / (Up + Down), and false when there is neither.
func (t Times) Uptime() (float64, bool) {
	if t.Up+t.Down <= 0 {
		return 0, false
	}
	return float64(t.Up) / float64(t.Up+t.Down), true
}

// Incident is a span in which the service was down. A span nobody
// watched inside it, with the service down on both sides, does not end
// it: it is counted in Unknown, and left out of the downtime.
type Incident struct {
	Start, End time.Time // End is zero while it is open
	Instances  []string  // those dead during it
	Unknown    time.Duration
}

// Open reports whether the incident has not ended.
func (i Incident) Open() bool { return i.End.IsZero() }

// Duration returns how long it lasted, up to now when open.
func (i Incident) Duration(now time.Time) time.Duration {
	if i.Open() {
		return now.Sub(i.Start)
	}
	return i.End.Sub(i.Start)
}

// InstanceReport is one instance's share of a report.
type InstanceReport struct {
	Instance string
	Times
	Lost int64
}

// ServiceReport is a service over a window.
type ServiceReport struct {
	Service string
	Times
	Incidents []Incident
	Restarts  int   // instances that appeared to replace one that died or stopped
	Lost      int64 // heartbeats lost, all instances
	Instances []InstanceReport
}

// Compute reports service over w from its entries (in any order) and the
// gaps. An open incident (the service still down at w.To) has no End. It
// costs O((entries + instances) log gaps).
func Compute(service string, entries []history.Entry, gaps []history.Gap, w Window, minAlive int) ServiceReport {
	if minAlive < 1 {
		minAlive = 1
	}
	rep := ServiceReport{Service: service}
	if !w.To.After(w.From) {
		return rep
	}
	entries = slices.Clone(entries)
	sort.SliceStable(entries, func(i, j int) bool { return entries[i].At.Before(entries[j].At) })
	g := newGapIndex(gaps, w)

	type inst struct {
		InstanceReport
		state string
		since time.Time
	}
	per := map[string]*inst{}
	get := func(id string) *inst {
		r, ok := per[id]
		if !ok {
			r = &inst{InstanceReport: InstanceReport{Instance: id}}
			per[id] = r
		}
		return r
	}
	// account adds [from, to) in state st to t, the watched part by state
	// and the rest as unknown.
	account := func(t *Times, st string, from, to time.Time) {
		if from.Before(w.From) {
			from = w.From
		}
		if to.After(w.To) {
			to = w.To
		}
		if !to.After(from) {
			return
		}
		unknown := g.overlap(from, to)
		watched := to.Sub(from) - unknown
		t.Unknown += unknown
		switch st {
		case "alive", "stale":
			t.Up += watched
		case "dead":
			t.Down += watched
		case "stopped":
			t.Planned += watched
		default:
			t.Unknown += watched
		}
	}

	// ghosts are dead instances the watcher forgot: the service stays
	// down for them until an instance is up again.
	var up, stopped, existing, replaceable, ghosts int
	deadSet := map[string]bool{}
	var open *Incident
	var svcState string
	var svcSince time.Time
	// serviceState is the service's state from the instance counts.
	serviceState := func() string {
		switch {
		case existing+ghosts == 0:
			return "unknown"
		case up >= minAlive:
			return "alive"
		case stopped == existing+ghosts:
			return "stopped"
		}
		return "dead"
	}
	// settle accounts the service's time up to now and opens or closes an
	// incident when its state changes.
	settle := func(now time.Time) {
		st := serviceState()
		if st == svcState {
			return
		}
		if !svcSince.IsZero() {
			account(&rep.Times, svcState, svcSince, now)
		}
		inWindow := !now.Before(w.From) && now.Before(w.To)
		switch {
		case st == "dead" && open == nil:
			start := now
			if start.Before(w.From) {
				start = w.From
			}
			open = &Incident{Start: start}
			for id := range deadSet {
				open.Instances = append(open.Instances, id)
			}
		case st != "dead" && open != nil:
			if inWindow || now.Equal(w.To) {
				open.End = now
			}
			if open.End.IsZero() || open.End.After(w.From) {
				rep.Incidents = append(rep.Incidents, finish(*open))
			}
			open = nil
		}
		svcState, svcSince = st, now
	}
	count := func(st string, d int) {
		switch st {
		case "alive", "stale":
			up += d
			existing += d
		case "dead":
			existing += d
		case "stopped":
			stopped += d
			existing += d
		}
	}
	for _, e := range entries {
		if !e.At.Before(w.To) {
			break
		}
		inWindow := !e.At.Before(w.From)
		if e.To == history.Lost {
			if inWindow {
				get(e.Instance).Lost += e.Lost
				rep.Lost += e.Lost
			}
			continue
		}
		r := get(e.Instance)
		prev := r.state
		if prev != "" {
			account(&r.Times, prev, r.since, e.At)
		}
		if e.To == "alive" && (prev == "" || prev == "unknown" || prev == history.Forgotten) && replaceable > 0 {
			replaceable--
			if inWindow {
				rep.Restarts++
			}
		}
		switch {
		case (e.To == "dead" || e.To == "stopped") && prev != "dead" && prev != "stopped":
			replaceable++
		case (prev == "dead" || prev == "stopped") && (e.To == "alive" || e.To == "stale"):
			replaceable = max(replaceable-1, 0) // the same instance came back
		}
		count(prev, -1)
		count(e.To, +1)
		switch {
		case e.To == history.Forgotten && prev == "dead":
			ghosts++
		case e.To == "alive" || e.To == "stale":
			ghosts = 0
		}
		delete(deadSet, e.Instance)
		if e.To == "dead" {
			deadSet[e.Instance] = true
			if open != nil {
				open.Instances = append(open.Instances, e.Instance)
			}
		}
		r.state, r.since = e.To, e.At
		settle(e.At)
	}
	for _, r := range per {
		if r.state != "" {
			account(&r.Times, r.state, r.since, w.To)
		}
		if r.state == history.Forgotten && r.Times == (Times{}) && r.Lost == 0 {
			continue // forgotten before the window
		}
		rep.Instances = append(rep.Instances, r.InstanceReport)
	}
	if !svcSince.IsZero() {
		account(&rep.Times, svcState, svcSince, w.To)
	}
	if open != nil {
		rep.Incidents = append(rep.Incidents, finish(*open)) // still down at w.To: open
	}
	for i := range rep.Incidents {
		in := &rep.Incidents[i]
		end := in.End
		if in.Open() {
			end = w.To
		}
		in.Unknown = g.overlap(in.Start, end)
	}
	slices.SortFunc(rep.Instances, func(a, b InstanceReport) int { return strings.Compare(a.Instance, b.Instance) })
	return rep
}

// gapIndex answers how much of a span nobody watched.
type gapIndex struct {
	gaps []history.Gap
	sum  []time.Duration // sum[i]: total length of gaps[:i]
}

func newGapIndex(gaps []history.Gap, w Window) gapIndex {
	var g gapIndex
	for _, x := range mergeGaps(gaps) {
		if x.From.Before(w.From) {
			x.From = w.From
		}
		if x.To.After(w.To) {
			x.To = w.To
		}
		if x.To.After(x.From) {
			g.gaps = append(g.gaps, x)
		}
	}
	g.sum = make([]time.Duration, len(g.gaps)+1)
	for i, x := range g.gaps {
		g.sum[i+1] = g.sum[i] + x.To.Sub(x.From)
	}
	return g
}

// covered returns the gap time before t.
func (g gapIndex) covered(t time.Time) time.Duration {
	i := sort.Search(len(g.gaps), func(i int) bool { return g.gaps[i].To.After(t) })
	d := g.sum[i]
	if i < len(g.gaps) && t.After(g.gaps[i].From) {
		d += t.Sub(g.gaps[i].From)
	}
	return d
}

func (g gapIndex) overlap(from, to time.Time) time.Duration { return g.covered(to) - g.covered(from) }

func finish(i Incident) Incident {
	slices.Sort(i.Instances)
	i.Instances = slices.Compact(i.Instances)
	return i
}

// mergeGaps sorts gaps and merges those that overlap.
func mergeGaps(gaps []history.Gap) []history.Gap {
	gaps = slices.Clone(gaps)
	slices.SortFunc(gaps, func(a, b history.Gap) int { return a.From.Compare(b.From) })
	var out []history.Gap
	for _, g := range gaps {
		if !g.To.After(g.From) {
			continue
		}
		if n := len(out); n > 0 && !g.From.After(out[n-1].To) {
			if g.To.After(out[n-1].To) {
				out[n-1].To = g.To
			}
			continue
		}
		out = append(out, g)
	}
	return out
}
