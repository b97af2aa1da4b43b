package protocol

import (
	"errors"
	"strings"
	"testing"
)

func TestLocalFramesStayOffTheClusterPort(t *testing.T) {
	f, err := Frame(&Local{Op: LocalExec, Line: "!cluster_members"})
	if err != nil {
		t.Fatal(err)
	}
	payload := f[1:] // a one-byte length prefix for a frame this small
	m, err := NewDecoder().DecodeLocal(payload)
	if err != nil || m.Op != LocalExec || m.Line != "!cluster_members" {
		t.Fatalf("round trip: %+v, %v", m, err)
	}
	if _, err := NewDecoder().DecodeOnly(payload, AfterHandshake); err == nil {
		t.Fatal("a connection of the cluster took a local frame")
	}
	g, _ := Frame(&Leave{Alias: "n1"})
	if _, err := NewDecoder().DecodeLocal(g[1:]); err == nil {
		t.Fatal("the local socket took a cluster frame")
	}
}

func TestLocalLimits(t *testing.T) {
	for name, m := range map[string]*Local{
		"no op":          {},
		"unknown op":     {Op: localOpEnd},
		"long line":      {Op: LocalExec, Line: strings.Repeat("x", MaxLocalLine+1)},
		"too many items": {Op: LocalCompletions, Items: make([]string, MaxLocalItems+1)},
		"long item":      {Op: LocalCompletions, Items: []string{strings.Repeat("x", MaxLocalItem+1)}},
	} {
		t.Run(name, func(t *testing.T) {
			f, err := NewEncoder().AppendFrame(nil, m)
			if err != nil {
				if errors.Is(err, ErrFrameTooLarge) {
					return
				}
				t.Fatal(err)
			}
			fr := NewFrameReader(strings.NewReader(string(f)), MaxLocalFrame)
			p, err := fr.Next()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := NewDecoder().DecodeLocal(p); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}
