package protocol

// ReplyError is a staging request's failure as the root reported it.
type ReplyError struct {
	Path string
	Msg  string
	// Denied: the root refused the path (outside the root directory, or
	// not named by this node's copy commands). System: the root failed
	// for a reason that is not the job's.
	Denied, System bool
}

func (e *ReplyError) Error() string { return e.Msg }
