//go:build !unix

package main

// alive cannot tell here: every process is taken to be alive, so nothing
// of one is removed.
func alive(int) bool { return true }
