// Package alerting decides when alerts about heartbeats fire and resolve,
// from a watcher's verdicts: an instance dead (HeartbeatInstanceDead), a
// service below its minimum of instances up (HeartbeatServiceDown), and,
// instead of one alert per instance, the heartbeat source unreachable
// (HeartbeatSourceUnreachable) when the watcher itself cannot see or a
// large share of the fleet falls silent at once.
//
// An Engine evaluates its rules over a watch.Tracker and returns the fires
// and resolves to deliver (package delivery carries them). Rules are
// values, each with its own state (since when each of its conditions has
// held, for its For); adding a rule adds a value, not a branch. The alerts
// firing are kept in Valkey, so that an engine that takes over, on
// another replica or after a restart, neither fires them again nor
// forgets to resolve them; only one engine should evaluate at a time (the
// admin panel runs it on the replica that holds the recorder lease).
//
// A File is the configuration file's schema: typed structs whose fields
// check themselves as they are read, so every mistake is an error naming
// the line and the key; File.Options turns it into the Engine's options.
package alerting
