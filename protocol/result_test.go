package protocol

import (
	"net"
	"reflect"
	"testing"
)

// TestResultFieldsTravel: a result's ignored errors and staged bytes
// cross a connection, and a result from a peer that sends neither (an
// agent of an earlier build of protocol version 3) reads as none.
func TestResultFieldsTravel(t *testing.T) {
	a, b := net.Pipe()
	ca, cb := NewConn(a), NewConn(b)
	defer ca.Close()
	defer cb.Close()
	three := 3
	res := &Result{OK: true, StagedIn: 1 << 20, StagedOut: 7, Ignored: []Ignored{
		{Pos: "4:2", Command: `shexec "exit 3"`, Exit: &three, Error: "exit status 3"},
		{Pos: "5:2", Command: "copy node:a root:a", Error: `node file "a" does not exist`}}}
	go ca.Send(&Msg{Type: TypeEvent, Event: &Event{Kind: EventEnded, Job: 1, Attempt: 1, Result: res}})
	m, err := cb.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(m.Event.Result, res) {
		t.Errorf("result arrived as %+v, want %+v", m.Event.Result, res)
	}

	var old Msg
	if err := decodeHeader([]byte(`{"t":"event","event":{"kind":"ended","job":1,"attempt":1,"Result":{"ok":true,"wall":5,"cpu":1,"max_rss":9}}}`), &old); err != nil {
		t.Fatal(err)
	}
	if r := old.Event.Result; r == nil || !r.OK || r.Ignored != nil || r.StagedIn != 0 || r.StagedOut != 0 {
		t.Errorf("a result without the new fields read as %+v", r)
	}
}
