package protocol

// Pilot is one pilot of a batch cluster as its head sees it: a batch
// job whose script runs `orrery agent`, which joins the head.
type Pilot struct {
	// ID is the batch system's job ID, Name the pilot's job name.
	ID   string `json:"id"`
	Name string `json:"name"`
	// State is pending, running, draining or ended.
	State string `json:"state"`
	// Reason is the batch system's word on why a pending pilot waits,
	// or what ended it.
	Reason string `json:"reason,omitempty"`
}

// Pilot states.
const (
	PilotPending  = "pending"  // in the batch queue
	PilotRunning  = "running"  // its agent runs (joined, or on its way)
	PilotDraining = "draining" // its agent takes no more jobs and leaves once its own end
	PilotEnded    = "ended"    // no longer in the batch queue
)
