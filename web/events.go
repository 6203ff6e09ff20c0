package web

import (
	"net/http"
	"sync"
	"time"
)

// Hub fans out the run's news to viewers' event streams (server-sent
// events on /api/events) and keeps the latest for /api/overview. The
// publisher never waits on a viewer: each stream has a queue of
// StreamQueue messages, and a viewer that falls that far behind (one
// that never reads, say) is dropped; its browser reconnects and starts
// from the latest news.
type Hub struct {
	mu      sync.Mutex
	latest  []byte
	streams map[chan []byte]struct{}
	closed  bool
	dropped int64
}

// StreamQueue is how many messages a viewer's stream may fall behind
// before it is dropped.
const StreamQueue = 16

// MaxStreams bounds the event streams open at once.
const MaxStreams = 256

// NewHub returns an empty hub.
func NewHub() *Hub { return &Hub{streams: map[chan []byte]struct{}{}} }

// Publish makes msg (one JSON document, no newline) the latest news and
// queues it for every stream; it never blocks.
func (h *Hub) Publish(msg []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.latest = msg
	for ch := range h.streams {
		select {
		case ch <- msg:
		default:
			// Too far behind: dropped (its handler sees the channel
			// closed and ends the response).
			delete(h.streams, ch)
			close(ch)
			h.dropped++
		}
	}
}

// Dropped is how many streams were dropped for falling behind.
func (h *Hub) Dropped() int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.dropped
}

// Close ends every stream, and refuses new ones.
func (h *Hub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for ch := range h.streams {
		delete(h.streams, ch)
		close(ch)
	}
}

// subscribe opens a stream that starts with the latest news; ok is false
// when the hub is closed or has MaxStreams open.
func (h *Hub) subscribe() (ch chan []byte, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed || len(h.streams) >= MaxStreams {
		return nil, false
	}
	ch = make(chan []byte, StreamQueue)
	if h.latest != nil {
		ch <- h.latest
	}
	h.streams[ch] = struct{}{}
	return ch, true
}

// unsubscribe closes a stream whose viewer went away.
func (h *Hub) unsubscribe(ch chan []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.streams[ch]; ok {
		delete(h.streams, ch)
		close(ch)
	}
}

// Latest is the latest news, or nil.
func (h *Hub) Latest() []byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.latest
}

// writeWait bounds each write to a viewer's stream: a viewer whose
// connection takes no bytes for that long is dropped.
const writeWait = 10 * time.Second

// keepAlive is how often an idle stream sends a comment, so that
// proxies and the viewer know it is alive.
const keepAlive = 15 * time.Second

// serveEvents streams the hub's news as server-sent events.
func (h *Hub) serveEvents(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodHead {
		// Its headers alone: a stream's slot is for a viewer who reads it.
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		return
	}
	ch, ok := h.subscribe()
	if !ok {
		refuse(w, http.StatusServiceUnavailable, "too many event streams, or the run is ending: try again")
		return
	}
	defer h.unsubscribe(ch)
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	tick := time.NewTicker(keepAlive)
	defer tick.Stop()
	for {
		var out []byte
		select {
		case msg, open := <-ch:
			if !open {
				return // dropped, or the hub closed
			}
			out = append(append([]byte("data: "), msg...), '\n', '\n')
		case <-tick.C:
			out = []byte(": alive\n\n")
		case <-r.Context().Done():
			return
		}
		rc.SetWriteDeadline(time.Now().Add(writeWait))
		if _, err := w.Write(out); err != nil {
			return
		}
		if err := rc.Flush(); err != nil {
			return
		}
	}
}

// serveOverview answers the latest news as one JSON document.
func (h *Hub) serveOverview(w http.ResponseWriter, r *http.Request) {
	msg := h.Latest()
	if msg == nil {
		refuse(w, http.StatusServiceUnavailable, "no news yet: try again in a moment")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(msg)
}
