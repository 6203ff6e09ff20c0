package dispatch

import (
	"strings"
	"testing"
	"unicode"

	"orrery/protocol"
)

// TestHeadPilotsArePrintable: what a head says of its pilots is
// printed as is by `orrery status` (statusclusters.go) on the user's
// terminal; a head (a remote machine) must not be able to put escape
// sequences or extra lines there. Bounds clip lengths only.
func TestHeadPilotsArePrintable(t *testing.T) {
	evil := "x\x1b]0;pwned\x07\x1b[2J\nfake line"
	got := boundPilots([]protocol.Pilot{{ID: evil, Name: evil, State: evil, Reason: evil}})
	for _, s := range []string{got[0].ID, got[0].Name, got[0].State, got[0].Reason, Printable(evil, maxBatchWord)} {
		if strings.IndexFunc(s, unicode.IsControl) >= 0 {
			t.Errorf("kept control characters: %q", s)
		}
	}
	if st := got[0].State; st != protocol.PilotPending && st != protocol.PilotRunning && st != protocol.PilotDraining && st != protocol.PilotEnded {
		t.Errorf("state %q kept: want one of the four states", st)
	}
}
