// Package term renders what package watch sees for people and for scripts:
// heartbeats in the original design's monitor format, state transitions, a live table
// of services and instances, and one JSON object per line (JSON,
// InstanceJSON). The examples/monitor command is built on it; an admin
// panel that draws its own screen needs only watch.
//
// Strings from the wire are data. Every renderer passes service names,
// instance ids, field keys and values, channel and key names, and the
// errors that quote them through Escape, so a publisher cannot move a
// cursor, set a window title or make one name look like another; the JSON
// lines are valid UTF-8 with every such rune written as a \u escape. A
// Style colours its output only when asked (Colour says when: a terminal,
// and NO_COLOR unset).
package term
