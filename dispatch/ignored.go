package dispatch

import (
	"orrery/protocol"
	"orrery/store"
)

// ignoredOf is what the store keeps of the commands whose failure
// onerror ignore let pass in an attempt: at most protocol.MaxIgnored,
// each string at most protocol.MaxIgnoredText bytes, whatever a node
// sends.
func ignoredOf(res *protocol.Result) []store.Ignored {
	var out []store.Ignored
	for i, ig := range res.Ignored {
		if i == protocol.MaxIgnored {
			break
		}
		out = append(out, store.Ignored{Pos: protocol.CutIgnoredText(ig.Pos), Command: protocol.CutIgnoredText(ig.Command), Exit: ig.Exit,
			Signal: protocol.CutIgnoredText(ig.Signal), Error: protocol.CutIgnoredText(ig.Error)})
	}
	return out
}
