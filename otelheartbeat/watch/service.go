package watch

import "time"

// The one owner of what a service's state is, and of how its instances
// are counted: the monitor, the admin panel's API and page, history,
// uptime and alerting all ask here.

// ParseState reads a State from its String form; false for anything else.
func ParseState(s string) (State, bool) {
	for st := Unknown; st <= Replaced; st++ {
		if st.String() == s {
			return st, true
		}
	}
	return Unknown, false
}

// Up reports whether an instance in this state counts as up: alive, or
// stale (late, not yet missing for three intervals).
func (s State) Up() bool { return s == Alive || s == Stale }

// Gone reports whether an instance in this state has stopped beating:
// dead or stopped.
func (s State) Gone() bool { return s == Dead || s == Stopped }

// Counts are instances by state.
type Counts struct {
	Alive   int `json:"alive"`
	Stale   int `json:"stale"`
	Dead    int `json:"dead"`
	Stopped int `json:"stopped"`
	// Degraded counts the up instances (alive or stale) that break a
	// health rule (Instance.Degraded): they are among Alive and Stale too.
	Degraded int `json:"degraded"`
}

// Count counts one instance as it stands at now: by its state, and as
// degraded when it is.
func (c *Counts) Count(in *Instance, now time.Time) {
	c.Add(in.State, 1)
	if in.Degraded(now) {
		c.Degraded++
	}
}

// Add counts n more instances in state s (n may be negative); an
// instance of unknown state is not counted.
func (c *Counts) Add(s State, n int) {
	switch s {
	case Alive:
		c.Alive += n
	case Stale:
		c.Stale += n
	case Dead:
		c.Dead += n
	case Stopped:
		c.Stopped += n
	}
}

// Up is how many instances are up: alive or stale.
func (c Counts) Up() int { return c.Alive + c.Stale }

// Total is how many instances are counted.
func (c Counts) Total() int { return c.Alive + c.Stale + c.Dead + c.Stopped }

// ServiceState is a service's state, from its instances'.
type ServiceState uint8

// Service states.
const (
	// ServiceUnknown: no instance is known.
	ServiceUnknown ServiceState = iota
	// ServiceUp: at least its minimum of instances are up.
	ServiceUp
	// ServiceDown: fewer than its minimum are up, and not because
	// instances stopped gracefully: one is dead (a crash or a hang), or
	// too few exist.
	ServiceDown
	// ServiceStopped: fewer than its minimum are up only because
	// instances stopped gracefully (a deploy, a scale-down): none is
	// dead, and with the stopped ones it would have its minimum. Planned,
	// never an outage.
	ServiceStopped
	// ServiceDegraded: up by the count, but every up instance breaks a
	// health rule (Instance.Degraded): alive, and not doing its work.
	ServiceDegraded
)

func (s ServiceState) String() string {
	switch s {
	case ServiceUp:
		return "up"
	case ServiceDown:
		return "down"
	case ServiceStopped:
		return "stopped"
	case ServiceDegraded:
		return "degraded"
	}
	return "unknown"
}

// State applies the service rule: up while at least minAlive instances
// (1 when less) are up; below that, stopped (planned) when no instance is
// dead and the stopped ones make up the shortfall, so a deploy is never an
// outage, and down otherwise; unknown with no instance at all. A service
// up by the count whose up instances all break a health rule is degraded.
func (c Counts) State(minAlive int) ServiceState {
	need := max(minAlive, 1)
	switch {
	case c.Total() == 0:
		return ServiceUnknown
	case c.Up() >= need && c.Degraded > 0 && c.Degraded >= c.Up():
		return ServiceDegraded
	case c.Up() >= need:
		return ServiceUp
	case c.Dead == 0 && c.Up()+c.Stopped >= need:
		return ServiceStopped
	}
	return ServiceDown
}
