package main

import (
	"os"
	"runtime/debug"
	"testing"
)

// TestGCPercent: a node collects at gcPercent unless GOGC says otherwise.
func TestGCPercent(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	t.Setenv("GOGC", "50") // restored after the test
	setGCPercent()
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("with GOGC set, the collector's percent became %d, want it left at 100", got)
	}
	os.Unsetenv("GOGC")
	setGCPercent()
	if got := debug.SetGCPercent(100); got != gcPercent {
		t.Errorf("without GOGC, the collector's percent is %d, want %d", got, gcPercent)
	}
}
