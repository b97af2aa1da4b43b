package manager

import "time"

// Snapshot is an immutable view of the membership table, published by its
// owner after every change; readers on any goroutine share it.
type Snapshot struct {
	Entries []Entry
	At      time.Time
	Version uint64 // the table's Version when it was taken
}

// Get returns the entry for alias.
func (s *Snapshot) Get(alias string) (Entry, bool) {
	for _, e := range s.Entries {
		if e.Alias == alias {
			return e, true
		}
	}
	return Entry{}, false
}
