// Package protocol is the agent protocol: the only way the dispatcher and
// a node agent talk. Messages travel in frames over any connection — an
// in-memory pipe for the embedded cluster, TCP for `orrery agent` — so the
// network path is the tested path.
//
// A frame is two 4-byte big-endian lengths (header, data), a JSON header
// (a Msg) and raw data bytes (file contents when staging). One goroutine
// reads a Conn; any number may send.
package protocol

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// Version is the protocol version an agent sends when it registers.
// Version 2: a cancel names one attempt, and heartbeats carry each
// attempt's resident memory and process group.
const Version = 2

// Message types.
const (
	TypeRegister  = "register"  // agent → dispatcher: who I am
	TypeWelcome   = "welcome"   // dispatcher → agent: accepted; the plan
	TypeStart     = "start"     // dispatcher → agent: run an attempt of a job
	TypeCancel    = "cancel"    // dispatcher → agent: stop attempt Attempt of job Job
	TypeEvent     = "event"     // agent → dispatcher: an attempt started or ended
	TypeHeartbeat = "heartbeat" // agent → dispatcher: still alive
	TypeShutdown  = "shutdown"  // dispatcher → agent: no more work; exit
	// Staging: the agent asks the root for files; the dispatcher answers.
	TypeOpen   = "open"   // read root file Path: answered by data frames ending in EOF, or a reply with Error
	TypeCreate = "create" // write root file Path: followed by data frames, then close
	TypeData   = "data"   // a chunk of a file (in the frame's data)
	TypeClose  = "close"  // end of a created file: answered by a reply
	TypeGlob   = "glob"   // match Path as a pattern on the root: answered by a reply with Paths
	TypeStat   = "stat"   // describe root file Path: answered by a reply with Info
	TypeReply  = "reply"  // the answer to a request (ID), with Error when it failed
)

// Msg is one message. Type says which fields matter.
type Msg struct {
	Type      string     `json:"t"`
	ID        uint64     `json:"id,omitempty"` // request ID of a staging exchange
	Register  *Register  `json:"register,omitempty"`
	Welcome   *Welcome   `json:"welcome,omitempty"`
	Start     *Start     `json:"start,omitempty"`
	Event     *Event     `json:"event,omitempty"`
	Heartbeat *Heartbeat `json:"heartbeat,omitempty"`
	Job       int64      `json:"job,omitempty"`     // cancel
	Attempt   int        `json:"attempt,omitempty"` // cancel
	Path      string     `json:"path,omitempty"`
	Paths     []string   `json:"paths,omitempty"`
	Mode      uint32     `json:"mode,omitempty"` // create: permission bits
	Info      *FileInfo  `json:"info,omitempty"` // stat reply
	EOF       bool       `json:"eof,omitempty"`
	Error     string     `json:"error,omitempty"`
	NotExist  bool       `json:"not_exist,omitempty"` // the error is: no such root file
	Data      []byte     `json:"-"`                   // carried as the frame's data
}

// Register is an agent introducing itself.
type Register struct {
	Version  int     `json:"version"`
	Name     string  `json:"name"`
	CPUs     int     `json:"cpus"`
	Memory   int64   `json:"memory"` // bytes
	Speed    float64 `json:"speed"`  // relative CPU speed, 1 = reference
	JobLimit int     `json:"job_limit"`
}

// Welcome accepts an agent and gives it the plan.
type Welcome struct {
	Node       string        `json:"node"` // the name the dispatcher knows the agent by
	Experiment int64         `json:"experiment"`
	PlanName   string        `json:"plan_name"`
	PlanText   string        `json:"plan_text"`
	Dialect    string        `json:"dialect"`
	Names      []string      `json:"names"`     // parameter names, the order of Start.Values
	Heartbeat  time.Duration `json:"heartbeat"` // how often to send heartbeats
}

// Start asks the agent to run attempt Attempt of job Job.
type Start struct {
	Job     int64    `json:"job"`
	Attempt int      `json:"attempt"`
	Values  []string `json:"values"`
}

// Event kinds.
const (
	EventStarted = "started"
	EventEnded   = "ended"
)

// Event reports what happened to an attempt.
type Event struct {
	Kind    string `json:"kind"`
	Job     int64  `json:"job"`
	Attempt int    `json:"attempt"`
	Result  *Result
}

// Result is how an attempt ended.
type Result struct {
	// OK is set when every command succeeded (or its failure was ignored).
	OK bool `json:"ok"`
	// System is set when the attempt failed for a reason not the job's
	// own (staging, the node's disk): it should run again, elsewhere.
	System bool          `json:"system,omitempty"`
	Exit   *int          `json:"exit,omitempty"`
	Signal string        `json:"signal,omitempty"`
	Error  string        `json:"error,omitempty"`
	Wall   time.Duration `json:"wall"`
	CPU    time.Duration `json:"cpu"`
	MaxRSS int64         `json:"max_rss"` // bytes
	Stdout []byte        `json:"stdout,omitempty"`
	Stderr []byte        `json:"stderr,omitempty"`
}

// Heartbeat says an agent is alive, and how busy its node is.
type Heartbeat struct {
	Running int     `json:"running"`
	Load    float64 `json:"load"` // 1-minute load average
	// Resident is the resident memory of each running attempt, as of
	// the heartbeat: what lets the dispatcher see a node whose jobs no
	// longer fit in its RAM before they finish.
	Resident []Resident `json:"resident,omitempty"`
}

// Resident is the resident memory of one running attempt: the sum over
// the processes of the command it runs now.
type Resident struct {
	Job     int64 `json:"job"`
	Attempt int   `json:"attempt"`
	Bytes   int64 `json:"bytes"`
	// Group is the process group of the command the attempt runs now:
	// what a dispatcher on the same machine moves when it migrates the
	// attempt to another node's control group.
	Group int `json:"group,omitempty"`
}

// MaxFrame bounds a frame's header and data, so a broken peer cannot make
// the other allocate without limit.
const MaxFrame = 64 << 20

// ChunkSize is the size of the data frames a file is sent in.
const ChunkSize = 256 << 10

// Conn sends and receives messages over a connection.
type Conn struct {
	rw  io.ReadWriteCloser
	r   *bufio.Reader
	mu  sync.Mutex // serialises writes
	w   *bufio.Writer
	hdr [8]byte
}

// NewConn wraps a connection.
func NewConn(rw io.ReadWriteCloser) *Conn {
	return &Conn{rw: rw, r: bufio.NewReaderSize(rw, 64<<10), w: bufio.NewWriterSize(rw, 64<<10)}
}

// Send writes one message. It is safe to call from several goroutines.
func (c *Conn) Send(m *Msg) error {
	head, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode %s: %w", m.Type, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var lens [8]byte
	binary.BigEndian.PutUint32(lens[:4], uint32(len(head)))
	binary.BigEndian.PutUint32(lens[4:], uint32(len(m.Data)))
	for _, b := range [][]byte{lens[:], head, m.Data} {
		if _, err := c.w.Write(b); err != nil {
			return err
		}
	}
	return c.w.Flush()
}

// ErrFrame reports a frame that breaks the protocol.
var ErrFrame = errors.New("protocol: bad frame")

// Recv reads the next message. Only one goroutine may call it.
func (c *Conn) Recv() (*Msg, error) {
	if _, err := io.ReadFull(c.r, c.hdr[:]); err != nil {
		return nil, err
	}
	hl, dl := binary.BigEndian.Uint32(c.hdr[:4]), binary.BigEndian.Uint32(c.hdr[4:])
	if hl > MaxFrame || dl > MaxFrame {
		return nil, fmt.Errorf("%w: %d+%d bytes", ErrFrame, hl, dl)
	}
	buf := make([]byte, int(hl)+int(dl))
	if _, err := io.ReadFull(c.r, buf); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrFrame, err)
	}
	var m Msg
	if err := json.Unmarshal(buf[:hl], &m); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrFrame, err)
	}
	if dl > 0 {
		m.Data = buf[hl:]
	}
	return &m, nil
}

// Close closes the connection.
func (c *Conn) Close() error { return c.rw.Close() }
