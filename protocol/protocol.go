// Package protocol is the agent protocol: the only way the dispatcher and
// a node agent talk. Messages travel in frames over any connection — an
// in-memory pipe for the embedded cluster, TCP or TLS for `orrery agent` —
// so the network path is the tested path.
//
// A frame is two 4-byte big-endian lengths (header, data), a JSON header
// (a Msg, one JSON object) and raw data bytes. Only a data message
// (TypeData) carries data: a chunk of a file being staged, at most
// ChunkSize bytes. One goroutine reads a Conn; any number may send.
//
// Limits. A Conn reads under Limits on the header and the data, checked
// before anything is allocated for a frame, so a peer cannot make the
// other hold more memory than the limits (plus the Conn's buffers) by
// announcing a large frame. Each side reads under the limits of what its
// peer may send it: RootLimits on the root's side of a node's connection,
// NodeLimits on the node's side (a welcome carries the plan's text), and
// HelloLimits for the first frame on the root's port. That frame is a
// hello, read under HelloLimits; nothing else is read before the peer is
// authenticated (the root enforces this, and then switches the Conn to
// RootLimits with SetLimits). A frame that breaks the protocol ends the
// Conn's reading with an error wrapping ErrFrame.
//
// Deadlines. Every send on a network connection has a deadline: the owner
// of a Conn sets one with SetSendTimeout, and a Send that misses it leaves
// the Conn broken, so a peer that stops reading cannot hold a sender for
// ever. SetReadDeadline bounds a wait for a frame, such as the hello.
package protocol

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// Version is the protocol version an agent sends when it says hello.
// Version 2: a cancel names one attempt, and heartbeats carry each
// attempt's resident memory and process group. Version 3: a connection
// opens with a hello (the credential) and, when the node enrols, an
// enrolled answer; a register lists the attempts the node still runs, so
// a node that reconnects resumes them.
//
// Fields added to a message without changing what the others mean keep
// the version (headers are JSON, and a peer ignores the fields it does
// not know, and reads those it misses as zero): a result's ignored
// errors and staged bytes came so, within version 3.
const Version = 3

// ALPN is the TLS application protocol a node agent asks for on the
// root's port; other protocols on the same port (the web page, cluster
// heads) have names of their own.
const ALPN = "orrery-agent/3"

// Message types.
const (
	TypeHello     = "hello"     // agent → root, first frame: the credential (join secret when enrolling)
	TypeEnrolled  = "enrolled"  // root → agent: accepted as node Node (with its new certificate when it enrolled)
	TypeRefused   = "refused"   // root → agent: credentials refused (Error says why); the connection closes
	TypeRegister  = "register"  // agent → dispatcher: who I am
	TypeWelcome   = "welcome"   // dispatcher → agent: accepted; the plan
	TypeStart     = "start"     // dispatcher → agent: run an attempt of a job
	TypeCancel    = "cancel"    // dispatcher → agent: stop attempt Attempt of job Job
	TypeEvent     = "event"     // agent → dispatcher: an attempt started or ended
	TypeHeartbeat = "heartbeat" // agent → dispatcher: still alive
	TypeShutdown  = "shutdown"  // dispatcher → agent: no more work; exit
	TypeRecorded  = "recorded"  // dispatcher → head: the end of attempt Attempt of job Job is taken (recorded, or given up): forget it
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
	Hello     *Hello     `json:"hello,omitempty"`
	Enrolled  *Enrolled  `json:"enrolled,omitempty"`
	Register  *Register  `json:"register,omitempty"`
	Welcome   *Welcome   `json:"welcome,omitempty"`
	Start     *Start     `json:"start,omitempty"`
	Event     *Event     `json:"event,omitempty"`
	Heartbeat *Heartbeat `json:"heartbeat,omitempty"`
	Job       int64      `json:"job,omitempty"`     // cancel
	Attempt   int        `json:"attempt,omitempty"` // cancel
	Path      string     `json:"path,omitempty"`
	Paths     []string   `json:"paths,omitempty"`
	Mode      uint32     `json:"mode,omitempty"`   // create: permission bits
	Offset    int64      `json:"offset,omitempty"` // open: the byte to start at
	Info      *FileInfo  `json:"info,omitempty"`   // stat reply
	EOF       bool       `json:"eof,omitempty"`
	Error     string     `json:"error,omitempty"`
	NotExist  bool       `json:"not_exist,omitempty"` // the error is: no such root file
	// Denied says the root refused the request: the path is outside the
	// root directory or not one this node's copy commands name.
	Denied bool `json:"denied,omitempty"`
	// System says the request failed on the root's side for a reason that
	// is not the job's (out of file descriptors, say): the attempt fails
	// as a system failure and the job runs again.
	System bool `json:"system,omitempty"`
	// Withdraw, on a cancel to a cluster head, asks it to take the
	// attempt back only if it still waits in its queue: one that has
	// left it for a node runs on (the head has said, or says, it
	// started), else it ends "cancelled" as for any cancel. A head that
	// ignores the field stops it either way.
	Withdraw bool   `json:"withdraw,omitempty"`
	Data     []byte `json:"-"` // carried as the frame's data
}

// Hello is the first message on a connection to the root's port: the
// only one read before the peer is authenticated. A node that has an
// identity shows its certificate in the TLS handshake and sends no
// secret; a node that has none sends the join secret and a public key,
// and is answered with an Enrolled certificate for that key.
type Hello struct {
	Version int    `json:"version"`
	Name    string `json:"name"`             // the name the node asks for
	Secret  string `json:"secret,omitempty"` // the join secret (enrolling only)
	// PublicKey is the node's public key in PKIX DER (enrolling only).
	PublicKey []byte `json:"public_key,omitempty"`
}

// Enrolled answers a hello that holds: the node ID by which the root
// knows the node and, when it has just enrolled, a certificate for its
// key, signed by the root's CA.
type Enrolled struct {
	Node string `json:"node"`
	Cert []byte `json:"cert,omitempty"` // DER
}

// Register is an agent introducing itself.
type Register struct {
	Version  int     `json:"version"`
	Name     string  `json:"name"`
	CPUs     int     `json:"cpus"`
	Memory   int64   `json:"memory"` // bytes
	Speed    float64 `json:"speed"`  // relative CPU speed, 1 = reference (believed only from trusted nodes)
	JobLimit int     `json:"job_limit"`
	// Head is set by a cluster head: one node that stands for a whole
	// cluster (its own dispatcher and nodes). JobLimit is then how many
	// of the root's attempts it may hold, running or queued; CPUs its
	// nodes' CPUs.
	Head bool `json:"head,omitempty"`
	// Cluster is the name of the cluster a head stands for.
	Cluster string `json:"cluster,omitempty"`
	// Running lists the attempts the node still runs when it registers
	// again after its connection dropped: the dispatcher resumes those it
	// still counts on and cancels the others.
	Running []AttemptRef `json:"running,omitempty"`
	// EndsIn is how long the node has left, as of this message, before
	// the batch system ends it (a pilot's time limit); 0: no end known.
	// A duration, not a time, since the two machines' clocks differ: the
	// agent works it out from its own monotonic clock at each register,
	// and the dispatcher turns it into a time on its own clock.
	EndsIn time.Duration `json:"ends_in,omitempty"`
}

// AttemptRef names one attempt of a job.
type AttemptRef struct {
	Job     int64 `json:"job"`
	Attempt int   `json:"attempt"`
	// Started is set by a head for an attempt that left its queue for
	// one of its nodes.
	Started bool `json:"started,omitempty"`
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
	// Ignored lists the commands whose failure onerror ignore let pass,
	// in the order they ran: at most MaxIgnored, each string at most
	// MaxIgnoredText bytes.
	Ignored []Ignored `json:"ignored,omitempty"`
	// StagedIn and StagedOut are the bytes the attempt's copies moved
	// from the root to the node and from the node to the root.
	StagedIn  int64 `json:"staged_in,omitempty"`
	StagedOut int64 `json:"staged_out,omitempty"`
	// StagingIn and StagingOut are how long the attempt's copies took:
	// those before its first other command (staging in) and those after
	// its last (staging out).
	StagingIn  time.Duration `json:"staging_in,omitempty"`
	StagingOut time.Duration `json:"staging_out,omitempty"`
	// Side says, for a system failure, whose side failed: SideNode (the
	// node's own machinery: its job directory, nodestart), SideRoot (the
	// root's: its disk, its descriptors), or "" when it may be the job's
	// (a copy that failed, say).
	Side string `json:"side,omitempty"`
	// Node is, from a cluster head, the node of its cluster that ran the
	// job's last attempt there ("" from a node: it ran it).
	Node string `json:"node,omitempty"`
	// Cancelled is set, from a cluster head, when the attempt stopped
	// because the root cancelled it (withdrew its job): never the job's
	// failure, even when the root that cancelled it is not the one that
	// hears its end (a root started again since).
	Cancelled bool `json:"cancelled,omitempty"`
}

// The sides a system failure can be on (Result.Side).
const (
	SideNode = "node"
	SideRoot = "root"
)

// Bounds of Result.Ignored, which keep an ended event's header within
// RootLimits beside the two streams' output.
const (
	MaxIgnored     = 16
	MaxIgnoredText = 512
)

// CutIgnoredText bounds a string of an ignored error to MaxIgnoredText
// bytes of valid UTF-8 (JSON would turn each invalid byte into three),
// cut on a character boundary. The agent cuts what it sends with it, and
// the dispatcher what it keeps, whatever a node sent.
func CutIgnoredText(s string) string {
	s = cutText(s)
	if !utf8.ValidString(s) {
		s = cutText(strings.ToValidUTF8(s, "\uFFFD"))
	}
	return s
}

func cutText(s string) string {
	if len(s) <= MaxIgnoredText {
		return s
	}
	const ellipsis = "…"
	i := MaxIgnoredText - len(ellipsis)
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + ellipsis
}

// Ignored is a command that failed under onerror ignore.
type Ignored struct {
	Pos     string `json:"pos"`              // LINE:COL of the command in the plan
	Command string `json:"command"`          // the command in canonical form
	Exit    *int   `json:"exit,omitempty"`   // the exit status of a process that exited
	Signal  string `json:"signal,omitempty"` // the signal that killed it
	Error   string `json:"error"`            // what went wrong
}

// Heartbeat says an agent is alive, and how busy its node is.
type Heartbeat struct {
	Running int     `json:"running"`
	Load    float64 `json:"load"` // 1-minute load average
	// Resident is the resident memory of each running attempt, as of
	// the heartbeat: what lets the dispatcher see a node whose jobs no
	// longer fit in its RAM before they finish.
	Resident []Resident `json:"resident,omitempty"`
	// Cluster is a head's view of its cluster (nil from a node).
	Cluster *ClusterStatus `json:"cluster,omitempty"`
	// Draining says the node takes no more jobs (it has been idle for
	// its --idle-exit, or its end is near): the dispatcher starts nothing
	// more there and sends it a shutdown once what runs there has ended.
	// Once set, it stays set for the agent's life.
	Draining bool `json:"draining,omitempty"`
}

// ClusterStatus is a head's view of its cluster, sent with its
// heartbeats.
type ClusterStatus struct {
	Nodes   int `json:"nodes"`   // its nodes connected and in service
	CPUs    int `json:"cpus"`    // their CPUs
	Slots   int `json:"slots"`   // the jobs they run at once (their job limits summed)
	Running int `json:"running"` // the root's attempts running on its nodes
	Queued  int `json:"queued"`  // the root's attempts waiting in its queue
	// Depth is how many of the root's attempts it wants to hold now:
	// running and queued.
	Depth int `json:"depth"`
	// Pilots are a batch cluster's pilots (pending, running and
	// draining, and the last few that ended); Batch says why it
	// submits no more, in the batch system's words, "" while it does.
	Pilots []Pilot `json:"pilots,omitempty"`
	Batch  string  `json:"batch,omitempty"`
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

// connBuffer is the size of a Conn's read and write buffers.
const connBuffer = 4 << 10

// ChunkSize is the size of the data frames a file is sent in, and the
// most data a frame may carry.
const ChunkSize = 256 << 10

// MaxHeader is the largest frame header a Conn sends, and the most that
// NodeLimits accepts: a welcome carries the plan's text.
const MaxHeader = 16 << 20

// Limits bound the frames a Conn reads. Both lengths of a frame are
// checked against them before anything is allocated for it; a frame over
// either limit is refused with an error wrapping ErrFrame.
type Limits struct {
	MaxHeader int // bytes of JSON header
	MaxData   int // bytes of data; 0 refuses every frame that carries data
}

// Limit presets. Each side of a connection reads under the limits of what
// its peer may send it.
var (
	// HelloLimits bound the first frame on the root's port: a hello, read
	// before the peer is authenticated. Nothing else is read from a peer
	// before it has proved who it is.
	HelloLimits = Limits{MaxHeader: 16 << 10, MaxData: 0}
	// RootLimits bound what the root accepts from an authenticated node:
	// registers, events (with the tail of each output stream),
	// heartbeats and staging requests, and files in chunks.
	RootLimits = Limits{MaxHeader: 1 << 20, MaxData: ChunkSize}
	// NodeLimits bound what a node accepts from the root: the welcome
	// carries the plan's text, so its header may be as large as MaxHeader.
	NodeLimits = Limits{MaxHeader: MaxHeader, MaxData: ChunkSize}
	// DefaultLimits are the limits of a Conn made by NewConn (RootLimits).
	DefaultLimits = RootLimits
)

// keepHeader is the largest header buffer a Conn keeps between frames;
// a larger one (a welcome, say) is dropped once decoded.
const keepHeader = 64 << 10

// Conn sends and receives messages over a connection.
type Conn struct {
	rw io.ReadWriteCloser

	// Receiving, by one goroutine.
	r      *bufio.Reader
	limits Limits
	lens   [8]byte
	head   []byte // header buffer, reused while it is at most keepHeader
	rerr   error  // set once the stream is out of step: every Recv returns it

	sendTimeout atomic.Int64 // a time.Duration; 0 is none

	mu   sync.Mutex // serialises writes
	w    *bufio.Writer
	werr error // set once a send failed: every later Send returns it
}

// NewConn wraps a connection, reading under DefaultLimits.
func NewConn(rw io.ReadWriteCloser) *Conn {
	return NewConnLimits(rw, DefaultLimits)
}

// NewConnLimits wraps a connection, reading under limits.
func NewConnLimits(rw io.ReadWriteCloser, limits Limits) *Conn {
	// Small buffers: a root holds thousands of connections, frames larger
	// than a buffer pass through it, and TLS keeps records of its own.
	return &Conn{rw: rw, r: bufio.NewReaderSize(rw, connBuffer), w: bufio.NewWriterSize(rw, connBuffer), limits: limits}
}

// SetLimits changes the limits the next frames are read under: the root
// reads a hello under HelloLimits and switches to RootLimits once the peer
// is authenticated. It must not be called while a Recv is in progress
// (call it from the goroutine that receives).
func (c *Conn) SetLimits(limits Limits) { c.limits = limits }

// SetSendTimeout bounds each later Send by d (0: no bound), when the
// connection has write deadlines (net.Conn, tls.Conn and net.Pipe do).
// A Send that times out leaves the Conn broken: every later Send fails at
// once with the same error. It is safe to call at any time.
func (c *Conn) SetSendTimeout(d time.Duration) { c.sendTimeout.Store(int64(d)) }

// SetReadDeadline sets the deadline of the connection's reads, as
// net.Conn's SetReadDeadline does: a Recv still waiting at t fails (the
// root bounds the wait for a hello this way). It does nothing, and
// returns nil, when the connection has no read deadlines.
func (c *Conn) SetReadDeadline(t time.Time) error {
	if d, ok := c.rw.(interface{ SetReadDeadline(time.Time) error }); ok {
		return d.SetReadDeadline(t)
	}
	return nil
}

// ErrFrame reports a frame that breaks the protocol.
var ErrFrame = errors.New("protocol: bad frame")

// Send writes one message. It is safe to call from several goroutines.
// It refuses, with an error wrapping ErrFrame, a message no peer would
// accept: data on a message that is not TypeData, data over ChunkSize, or
// a header over MaxHeader. A Send that fails to write (a timeout, a closed
// connection) leaves the Conn broken: every later Send returns its error.
func (c *Conn) Send(m *Msg) error {
	if len(m.Data) > 0 && m.Type != TypeData {
		return fmt.Errorf("%w: send %s: data on a message that is not %s", ErrFrame, m.Type, TypeData)
	}
	if len(m.Data) > ChunkSize {
		return fmt.Errorf("%w: send %s: data of %d bytes exceeds %d", ErrFrame, m.Type, len(m.Data), ChunkSize)
	}
	head, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode %s: %w", m.Type, err)
	}
	if len(head) > MaxHeader {
		return fmt.Errorf("%w: send %s: header of %d bytes exceeds %d", ErrFrame, m.Type, len(head), MaxHeader)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.werr != nil {
		return c.werr
	}
	if err := c.write(head, m.Data); err != nil {
		c.werr = fmt.Errorf("protocol: send %s: %w", m.Type, err)
		return c.werr
	}
	return nil
}

// write writes one frame under the send timeout. c.mu is held.
func (c *Conn) write(head, data []byte) error {
	if d := time.Duration(c.sendTimeout.Load()); d > 0 {
		if dl, ok := c.rw.(interface{ SetWriteDeadline(time.Time) error }); ok {
			err := dl.SetWriteDeadline(time.Now().Add(d))
			switch {
			case err == nil:
				defer dl.SetWriteDeadline(time.Time{})
			case !errors.Is(err, os.ErrNoDeadline):
				return err
			}
		}
	}
	var lens [8]byte
	binary.BigEndian.PutUint32(lens[:4], uint32(len(head)))
	binary.BigEndian.PutUint32(lens[4:], uint32(len(data)))
	for _, b := range [][]byte{lens[:], head, data} {
		if _, err := c.w.Write(b); err != nil {
			return err
		}
	}
	return c.w.Flush()
}

// Recv reads the next message. Only one goroutine may call it. At the end
// of the stream, between frames, it returns io.EOF. A frame that breaks
// the protocol (over the limits, truncated, a header that is not one JSON
// object, data on a message that is not TypeData) gives an error wrapping
// ErrFrame; after it, or after a read error in the middle of a frame,
// every Recv returns the same error. The memory a Conn holds is bounded by
// its limits: the header is read into a buffer reused from frame to
// frame, and m.Data, which the caller keeps, is allocated for each
// message that carries data.
func (c *Conn) Recv() (*Msg, error) {
	if c.rerr != nil {
		return nil, c.rerr
	}
	n, err := io.ReadFull(c.r, c.lens[:])
	if err != nil {
		if n == 0 {
			return nil, err // io.EOF between frames, or a deadline before one
		}
		return nil, c.broken(err)
	}
	hl := int64(binary.BigEndian.Uint32(c.lens[:4]))
	dl := int64(binary.BigEndian.Uint32(c.lens[4:]))
	if hl > int64(c.limits.MaxHeader) {
		return nil, c.broken(fmt.Errorf("%w: header of %d bytes exceeds %d", ErrFrame, hl, c.limits.MaxHeader))
	}
	if dl > int64(c.limits.MaxData) {
		return nil, c.broken(fmt.Errorf("%w: data of %d bytes exceeds %d", ErrFrame, dl, c.limits.MaxData))
	}
	head, err := c.readHeader(int(hl))
	if err != nil {
		return nil, c.broken(err)
	}
	m := new(Msg)
	if err := decodeHeader(head, m); err != nil {
		return nil, c.broken(err)
	}
	if dl > 0 {
		if m.Type != TypeData {
			return nil, c.broken(fmt.Errorf("%w: %d bytes of data on a %q message", ErrFrame, dl, m.Type))
		}
		m.Data = make([]byte, dl)
		if _, err := io.ReadFull(c.r, m.Data); err != nil {
			return nil, c.broken(err)
		}
	}
	return m, nil
}

// broken records that the stream is out of step after err and returns
// the error every later Recv returns. A stream that ends inside a frame
// is a truncated frame.
func (c *Conn) broken(err error) error {
	switch {
	case errors.Is(err, ErrFrame):
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		err = fmt.Errorf("%w: truncated frame: %w", ErrFrame, io.ErrUnexpectedEOF)
	default:
		err = fmt.Errorf("protocol: read frame: %w", err)
	}
	c.rerr = err
	return err
}

// readHeader reads a header of n bytes into the Conn's header buffer. The
// buffer grows as bytes arrive, not as the peer claims, so a peer that
// announces a large header and sends little costs little.
func (c *Conn) readHeader(n int) ([]byte, error) {
	buf := c.head[:0]
	for len(buf) < n {
		if len(buf) == cap(buf) {
			grown := make([]byte, len(buf), min(n, max(2*cap(buf), 4<<10)))
			copy(grown, buf)
			buf = grown
		}
		k, err := io.ReadFull(c.r, buf[len(buf):min(n, cap(buf))])
		buf = buf[:len(buf)+k]
		if err != nil {
			return nil, err
		}
	}
	if cap(buf) <= keepHeader {
		c.head = buf[:0]
	} else {
		c.head = nil
	}
	return buf, nil
}

// decodeHeader decodes a frame's header: exactly one JSON object, with
// nothing before or after it. Unknown fields are ignored, so that a newer
// peer may add some.
func decodeHeader(b []byte, m *Msg) error {
	if len(b) < 2 || b[0] != '{' || b[len(b)-1] != '}' {
		return fmt.Errorf("%w: header is not a JSON object", ErrFrame)
	}
	if err := json.Unmarshal(b, m); err != nil {
		return fmt.Errorf("%w: header: %w", ErrFrame, err)
	}
	return nil
}

// Close closes the connection. It works on a broken Conn too, and
// unblocks a Send or Recv in progress.
func (c *Conn) Close() error { return c.rw.Close() }
