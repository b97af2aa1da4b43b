//go:build linux && !race

package mesh

// For the race detector only (rawio_race.go).
func raceWrote() {}
func raceRead()  {}
