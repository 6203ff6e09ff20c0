package protocol

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"orrery/task"
)

// relayedRoot is a head's root as its own nodes see it: Stat answers
// with the description the root gave the head (a *FileInfo with the
// root's SHA-256, computed for the head, which may read the file for
// another of its attempts), and CanOpen says what this node may read.
type relayedRoot struct {
	task.Root
	sum      string
	readable string
}

func (r relayedRoot) Stat(ctx context.Context, name string) (fs.FileInfo, error) {
	return &FileInfo{FName: filepath.Base(name), FSize: 6, FMode: 0o644, FModTime: time.Unix(1, 0), SHA256: r.sum}, nil
}

func (r relayedRoot) CanOpen(name string) bool { return name == r.readable }

// TestAttackRelayedSHA256: on a head, a node that may only stat a root
// file (a copy destination of its job) must not learn the SHA-256 the
// root gave the head for it: with a small file, a hash is its content
// to whoever can guess it.
func TestAttackRelayedSHA256(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "in"), []byte("input\n"), 0o644)
	sum := hexSum([]byte("input\n"))
	p := hashPeer(t, relayedRoot{Root: task.ConfinedRoot{Dir: dir}, sum: sum, readable: "in"}, newSumCache(4))
	if got := statSum(t, p, "results/out-7.txt"); got != "" {
		t.Errorf("a file the node may only stat: SHA256 %q relayed from the root's answer to the head", got)
	}
	if got := statSum(t, p, "in"); got != sum {
		t.Errorf("a file the node may read: SHA256 %q, want the root's %q", got, sum)
	}
}
