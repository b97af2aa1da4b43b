package node

import (
	"strings"
	"testing"
)

func TestOwnedTagNamesWhatSetsIt(t *testing.T) {
	for key, want := range map[string]string{SlotsTag: "--slots N", KindsTag: "--kind", BootTag: "--operators", "role": "", "slot": "", "zone": ""} {
		err := OwnedTag(key)
		if want == "" && err != nil || want != "" && (err == nil || !strings.Contains(err.Error(), "tag "+key+" is kept by the node") || !strings.Contains(err.Error(), want)) {
			t.Errorf("OwnedTag(%q) = %v, want %q", key, err, want)
		}
	}
}
