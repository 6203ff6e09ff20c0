package headcache_test

import (
	"bytes"
	"context"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestAttackSpoolPaths: a head's node puts results under names that
// climb out of the spool (into objects/, to poison the cache, or out of
// the head's directory), and attempts are numbered at the extremes.
// Nothing is written outside the attempt's spool directory, the cached
// input is served as the root has it, and a negative number is refused.
func TestAttackSpoolPaths(t *testing.T) {
	rootDir, dir := t.TempDir(), t.TempDir()
	ctx := context.Background()
	genuine := content(7, 5000)
	writeFile(t, rootDir, "in.bin", genuine)
	up := newHashRoot(rootDir)
	c := openCache(t, dir, 1<<20)
	readVia(t, c.Root(up), "in.bin", genuine) // cached now
	sum := sumHex(genuine)
	outside := filepath.Join(filepath.Dir(dir), "escaped")

	for _, k := range [][2]int64{{-1, 1}, {1, -1}} {
		if _, err := c.Spool(k[0], int(k[1])); err == nil {
			t.Errorf("spool %d.%d was made", k[0], k[1])
		}
	}
	s, err := c.Spool(math.MaxInt64, math.MaxInt)
	if err != nil {
		t.Fatal(err)
	}
	poison := []byte("poisoned")
	for _, name := range []string{"../../objects/" + sum, "../objects/" + sum, "/" + sum, "../../../escaped", "manifest", "f1"} {
		if err := s.Root(up).Put(ctx, name, 0o644, bytes.NewReader(poison)); err != nil {
			t.Logf("put %s: %v", name, err)
		}
	}
	if _, err := os.Stat(outside); err == nil {
		t.Error("a put wrote outside the head's directory")
	}
	var files []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files = append(files, strings.TrimPrefix(p, dir+"/"))
		}
		return nil
	})
	spool := "spool/" + s.Key().String() + "/"
	for _, f := range files {
		if f != "objects/"+sum && !strings.HasPrefix(f, spool) {
			t.Errorf("a put made %s, outside its spool %s", f, spool)
		}
	}
	if !slices.Contains(files, "objects/"+sum) {
		t.Errorf("the cached input is gone: %q", files)
	}
	if got, err := os.ReadFile(filepath.Join(dir, "objects", sum)); err != nil || !bytes.Equal(got, genuine) {
		t.Error("the cached input was overwritten")
	}
	readVia(t, openCache(t, dir, 1<<20).Root(up), "in.bin", genuine)
	if s.Pending() != 6 {
		t.Errorf("%d results pending, want the 6 put (their names are the root's to judge)", s.Pending())
	}
}
