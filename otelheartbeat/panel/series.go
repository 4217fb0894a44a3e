package panel

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/otel-heartbeat/heartbeat/otelheartbeat/history"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/series"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/watch"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/wire"
)

// SeriesJSON is GET /api/v1/services/{name}/series: one numeric field of
// a service's instances over time, as the recorder kept it (package
// series).
type SeriesJSON struct {
	Field string  `json:"field"`
	Step  float64 `json:"step"` // seconds between points: 30 within the last hour, 300 beyond
	Since string  `json:"since"`
	Until string  `json:"until"`
	// Series are the instances', by id; an instance without a point in
	// the span has none.
	Series []InstanceSeriesJSON `json:"series"`
	// Aggregate is the service's: at each step, the sum and the greatest
	// of its instances' last values.
	Aggregate AggregateJSON `json:"aggregate"`
	// Events are the instances' deaths, stops, restarts and starts in the
	// span, from history, oldest first.
	Events []SeriesEventJSON `json:"events"`
	// Truncated: the service has more instances than one answer holds
	// (MaxSeriesInstances); ask for some by instance=ID.
	Truncated bool `json:"truncated,omitempty"`
	// EventsCut counts the older events left out (MaxSeriesEvents).
	EventsCut int `json:"events_cut,omitempty"`
	// EventsUnread: history could not be read in time, so Events is empty
	// whatever happened in the span; the values are answered all the same.
	EventsUnread bool `json:"events_unread,omitempty"`
}

// InstanceSeriesJSON is one instance's points: [unix seconds, the step's
// last value], and beside them [unix seconds, least, greatest].
type InstanceSeriesJSON struct {
	Instance string       `json:"instance"`
	Points   [][2]float64 `json:"points"`
	Range    [][3]float64 `json:"range"`
}

// AggregateJSON is a service's values across its instances.
type AggregateJSON struct {
	Sum [][2]float64 `json:"sum"`
	Max [][2]float64 `json:"max"`
}

// SeriesEventJSON is one change of an instance to mark on the time axis.
type SeriesEventJSON struct {
	At       float64 `json:"at"` // unix seconds
	Instance string  `json:"instance"`
	// Event is "dead", "stopped", "replaced" (a restart: By took its
	// place), "recovered" (dead, then beating again) or "started".
	Event string `json:"event"`
	By    string `json:"by,omitempty"`
}

// MaxSeriesInstances bounds the instances of one answer.
const MaxSeriesInstances = 200

func badRequest(w http.ResponseWriter, msg string) {
	writeJSON(w, http.StatusBadRequest, map[string]string{"error": msg})
}

// seriesOf serves SeriesJSON. Its query: field (required), since (a
// duration back from until, or an RFC 3339 time; default 1h), until (an
// RFC 3339 time; default now), each at most once, and instance
// (repeatable; default the instances tracked now).
func (p *Panel) seriesOf(w http.ResponseWriter, r *http.Request) {
	name, ids, ok := p.seriesQuery(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	if err := once(q, "field", "since", "until"); err != nil {
		badRequest(w, err.Error())
		return
	}
	field := q.Get("field")
	if field == "" || !series.ReadableField(field) {
		badRequest(w, "field: want the name of a numeric heartbeat field, such as memory_usage_mb (see .../series/fields)")
		return
	}
	now := time.Now()
	until := now
	if s := q.Get("until"); s != "" {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			badRequest(w, "until: want an RFC 3339 time")
			return
		}
		if t.Before(now) {
			until = t
		}
	}
	oldest := now.Add(-p.series.Retention())
	if !until.After(oldest) {
		badRequest(w, "until: want a time within the retention of values ("+p.series.Retention().String()+")")
		return
	}
	since := until.Add(-time.Hour)
	if s := q.Get("since"); s != "" {
		if d, err := time.ParseDuration(s); err == nil && d > 0 {
			since = until.Add(-d)
		} else if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
			since = t
		} else {
			badRequest(w, "since: want an RFC 3339 time or a positive duration such as 1h")
			return
		}
	}
	if since.Before(oldest) {
		since = oldest
	}
	if !since.Before(until) {
		badRequest(w, "since: want a time before until")
		return
	}
	truncated := false
	if len(ids) > MaxSeriesInstances {
		ids, truncated = ids[:MaxSeriesInstances], true
	}
	ctx, release, ok := p.readSlot(r.Context())
	if !ok {
		return
	}
	defer release()
	tier, points, err := p.series.Read(ctx, name, field, ids, since, until)
	if err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "reading values failed"})
		return
	}
	out := SeriesJSON{Field: field, Step: tier.Step.Seconds(), Since: stamp(since), Until: stamp(until),
		Series: []InstanceSeriesJSON{}, Events: []SeriesEventJSON{}, Truncated: truncated,
		Aggregate: AggregateJSON{Sum: [][2]float64{}, Max: [][2]float64{}}}
	type agg struct{ sum, max float64 }
	by := map[int64]*agg{}
	for _, id := range ids {
		pts := points[id]
		if len(pts) == 0 {
			continue
		}
		s := InstanceSeriesJSON{Instance: id, Points: make([][2]float64, len(pts)), Range: make([][3]float64, len(pts))}
		for i, pt := range pts {
			t := float64(pt.At.Unix())
			s.Points[i] = [2]float64{t, pt.Last}
			s.Range[i] = [3]float64{t, pt.Min, pt.Max}
			a := by[pt.At.Unix()]
			if a == nil {
				a = &agg{max: math.Inf(-1)}
				by[pt.At.Unix()] = a
			}
			a.sum += pt.Last
			a.max = max(a.max, pt.Last)
		}
		out.Series = append(out.Series, s)
	}
	steps := make([]int64, 0, len(by))
	for t := range by {
		steps = append(steps, t)
	}
	slices.Sort(steps)
	for _, t := range steps {
		out.Aggregate.Sum = append(out.Aggregate.Sum, [2]float64{float64(t), by[t].sum})
		out.Aggregate.Max = append(out.Aggregate.Max, [2]float64{float64(t), by[t].max})
	}
	// The changes to mark, when history answers in time: the values are
	// shown without them otherwise, and the answer says so.
	if entries, err := p.reports.history.read(ctx, p, name, now, since); err == nil {
		out.Events = seriesEvents(entries, ids, since, until)
		if n := len(out.Events) - MaxSeriesEvents; n > 0 {
			out.Events, out.EventsCut = out.Events[n:], n
		}
	} else {
		out.EventsUnread = true
	}
	writeJSON(w, http.StatusOK, out)
}

// MaxSeriesEvents bounds the events of one answer: the latest are kept.
const MaxSeriesEvents = 500

// SeriesFieldsJSON is GET /api/v1/services/{name}/series/fields: the
// fields whose values are kept, of the service's instances tracked now or
// of those asked for (instance=ID, repeatable).
type SeriesFieldsJSON struct {
	Fields []string `json:"fields"`
}

func (p *Panel) seriesFields(w http.ResponseWriter, r *http.Request) {
	name, ids, ok := p.seriesQuery(w, r)
	if !ok {
		return
	}
	ctx, release, ok := p.readSlot(r.Context())
	if !ok {
		return
	}
	defer release()
	fields, err := p.series.Fields(ctx, name, ids)
	if err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "reading values failed"})
		return
	}
	writeJSON(w, http.StatusOK, SeriesFieldsJSON{Fields: append([]string{}, fields...)})
}

// seriesQuery reads what both series endpoints take: the service, and the
// instances (asked for, else those tracked now), at most
// MaxSeriesInstances; false when it answered an error.
func (p *Panel) seriesQuery(w http.ResponseWriter, r *http.Request) (string, []string, bool) {
	if p.series == nil {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "this panel keeps no values over time"})
		return "", nil, false
	}
	name := r.PathValue("name")
	if err := wire.ValidateServiceName(name); err != nil {
		badRequest(w, err.Error())
		return "", nil, false
	}
	ids := r.URL.Query()["instance"]
	for _, id := range ids {
		if err := wire.ValidateInstanceID(id); err != nil {
			badRequest(w, "instance: "+err.Error())
			return "", nil, false
		}
	}
	if len(ids) == 0 {
		for _, in := range p.tr.ServiceInstances(name) {
			ids = append(ids, in.Instance)
		}
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	return name, ids, true
}

// seriesEvents are the entries of ids in [since, until] worth marking.
func seriesEvents(entries []history.Entry, ids []string, since, until time.Time) []SeriesEventJSON {
	out := []SeriesEventJSON{}
	for _, e := range entries {
		if e.At.Before(since) || e.At.After(until) {
			continue
		}
		if _, ok := slices.BinarySearch(ids, e.Instance); !ok {
			continue
		}
		ev := SeriesEventJSON{At: float64(e.At.UnixMilli()) / 1000, Instance: e.Instance}
		switch {
		case e.Event == history.Replaced:
			ev.Event, ev.By = "replaced", e.By
		case e.Event != history.Changed:
			continue
		case e.To == watch.Dead || e.To == watch.Stopped:
			ev.Event = e.To.String()
		case e.To == watch.Alive && e.From == watch.Dead:
			ev.Event = "recovered"
		case e.To == watch.Alive && e.From == watch.Unknown:
			ev.Event = "started"
		default:
			continue
		}
		out = append(out, ev)
	}
	return out
}

// writeSeries writes what the series writer holds every second while this
// replica records, and discards it while it does not, until ctx is done.
// Then it closes the writer, so that values observed from then on are
// counted lost, and writes what it still holds, in lastWrite at most,
// before Run has the recorder give the lease up.
func (p *Panel) writeSeries(ctx context.Context) {
	if p.seriesW == nil {
		<-ctx.Done()
		return
	}
	ticks := p.seriesTicks
	if ticks == nil {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		ticks = t.C
	}
	led := false
	say := func(line string, ok bool) {
		if ok {
			p.cfg.errorf("%s", line)
		}
	}
	for {
		select {
		case <-ctx.Done():
			p.seriesW.Close()
			recording := false
			if p.rec.Leading() {
				wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), lastWrite)
				recording = p.writeHeld(wctx)
				cancel()
				// What it could not write (the lease could not be
				// asked about) is lost, and counted.
				p.seriesW.Abandon()
			}
			// What was lost while this replica recorded is said before it
			// stops, however recently it last said.
			if led = led || recording; led {
				if !recording {
					say(p.seriesLosses.tick(time.Now(), false, p.seriesCounts()))
				}
				say(p.seriesLosses.end(time.Now(), p.seriesCounts()))
			}
			return
		case <-ticks:
			if ctx.Err() != nil {
				// The stop came while the last write ran, and a tick
				// with it: the stop goes first, as it has lastWrite to
				// write what is left in, and closes the writer first.
				continue
			}
		}
		if !p.rec.Leading() {
			// Values heard before the lease is first taken are kept for
			// it; a standby's are not.
			if !p.beforeFirstLease() {
				p.seriesW.Discard()
				say(p.seriesLosses.tick(time.Now(), false, p.seriesCounts()))
			}
			continue
		}
		// A stop does not cut a write short: what it took from the queue
		// would be lost, where the last write can still write it.
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		recording := p.writeHeld(wctx)
		cancel()
		led = led || recording
		say(p.seriesLosses.tick(time.Now(), recording, p.seriesCounts()))
	}
}

// seriesCounts is what the series writer has lost so far.
func (p *Panel) seriesCounts() lossCounts {
	return lossCounts{p.seriesW.Dropped(), p.seriesW.Unkept(), p.seriesW.Unwritten()}
}

// lastWrite bounds the write of what the series writer still holds when
// the panel stops.
const lastWrite = 2 * time.Second

// writeHeld writes what the series writer holds, if this replica still
// holds the lease, and discards it if not; it reports whether the values
// were this replica's to write (written, or not for a failure).
func (p *Panel) writeHeld(ctx context.Context) bool {
	// A replica paused past its lease may still think it records: it
	// asks first, so that it never writes over its successor's values
	// with older ones.
	held, err := p.lease.Holds(ctx, p.lease.Epoch())
	var n int
	switch {
	case err == nil && !held:
		p.seriesW.Discard()
	case err == nil:
		n, err = p.seriesW.Flush(ctx)
	}
	switch {
	case err != nil:
		p.seriesFailed.Fail("series", fmt.Errorf("keeping heartbeat values in Valkey: %w", err))
	case n > 0: // only a write that was made says it works
		p.seriesFailed.Resolve("series", errors.New("keeping heartbeat values in Valkey works again"))
	}
	// Values neither written nor discarded (a write failed, or the lease
	// could not be asked about) were this replica's to write.
	return held || err != nil
}

// losses says what values over time were lost while this replica
// recorded: at once the first time, then at most once a minute, what was
// lost since it last said, so that a fleet that overflows the queue every
// second is one line a minute, however often the lease changes hands. What
// the writer dropped while the replica did not record (a standby, or one
// that found its lease gone) was not to be written, and is not lost.
type losses struct {
	base lossCounts // as last said, with what was not to be written
	seen lossCounts // as at the last tick
	said time.Time
}

// lossCounts are the series writer's counts of values lost: dropped
// before they were queued, written and not kept by Valkey, and taken to
// be written and not written (a write that failed).
type lossCounts struct{ dropped, unkept, unwritten int64 }

func (c lossCounts) minus(o lossCounts) lossCounts {
	return lossCounts{c.dropped - o.dropped, c.unkept - o.unkept, c.unwritten - o.unwritten}
}

func (c lossCounts) plus(o lossCounts) lossCounts {
	return lossCounts{c.dropped + o.dropped, c.unkept + o.unkept, c.unwritten + o.unwritten}
}

// lossEvery is how often losses says more.
const lossEvery = time.Minute

// tick returns the line to say at a tick at now, if any, given the
// writer's counts; recording says whether the replica recorded since the
// last tick.
func (l *losses) tick(now time.Time, recording bool, counts lossCounts) (string, bool) {
	if !recording {
		l.base = l.base.plus(counts.minus(l.seen))
	}
	l.seen = counts
	return l.line(now, counts, false)
}

// end returns the line saying what is left to say when the replica stops,
// however recently it last said.
func (l *losses) end(now time.Time, counts lossCounts) (string, bool) {
	return l.line(now, counts, true)
}

func (l *losses) line(now time.Time, counts lossCounts, ending bool) (string, bool) {
	c := counts.minus(l.base)
	d, u, w := c.dropped, c.unkept, c.unwritten
	if (d <= 0 && u <= 0 && w <= 0) || (!ending && !l.said.IsZero() && now.Sub(l.said) < lossEvery) {
		return "", false
	}
	var parts []string
	if d > 0 {
		parts = append(parts, fmt.Sprintf("%d dropped: more than a second's queue holds, received at a time a slot cannot hold (before 1970, from 2106), or heard as the panel stopped", d))
	}
	if u > 0 {
		parts = append(parts, fmt.Sprintf("%d not kept by Valkey, of instances first heard or fields joining past what one write may lay out (their next values are kept), or past the %d fields an instance keeps", u, series.MaxFields))
	}
	if w > 0 {
		parts = append(parts, fmt.Sprintf("%d not written: the write failed (said as it failed)", w))
	}
	since := ""
	if !l.said.IsZero() {
		since = fmt.Sprintf(" in the last %v", now.Sub(l.said).Round(time.Second))
	}
	l.base, l.said = counts, now
	return fmt.Sprintf("heartbeat values%s: %s", since, strings.Join(parts, "; ")), true
}
