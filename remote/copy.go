package remote

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strings"
)

// CopyFile puts the local file at remotePath (relative to the remote
// user's home unless absolute) with the given mode, unless the remote
// file's SHA-256 (from sha256sum) already matches the local one; it
// reports whether it copied. The copy is atomic: the bytes go to a
// temporary name beside remotePath, are checked against the local
// hash, given their mode, synced to disk and renamed into place, and
// the directory is synced; a copy cut short leaves the old file. The
// remote parent directory is created when missing.
func (c *Client) CopyFile(ctx context.Context, local, remotePath string, mode os.FileMode) (bool, error) {
	if strings.ContainsAny(remotePath, "\n\x00") || remotePath == "" {
		return false, fmt.Errorf("ssh %s: copy to %q: not a usable path", c.endpoint, remotePath)
	}
	f, err := os.Open(local)
	if err != nil {
		return false, fmt.Errorf("copy %s: %v", local, err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return false, fmt.Errorf("copy %s: %v", local, err)
	}
	sum := hex.EncodeToString(h.Sum(nil))

	q := shellQuote(remotePath)
	out, _, exit, err := c.Run(ctx, "sha256sum -- "+q+" 2>/dev/null", nil)
	if err != nil {
		return false, err
	}
	if exit == 0 && strings.HasPrefix(string(out), sum+" ") {
		return false, nil
	}

	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return false, fmt.Errorf("copy %s: %v", local, err)
	}
	script := fmt.Sprintf(`set -e
p=%s
t="$p.orrery-tmp.$$"
mkdir -p -- "$(dirname -- "$p")"
trap 'rm -f -- "$t"' EXIT
umask 077
cat > "$t"
if ! printf '%%s  %%s\n' %s "$t" | sha256sum -c --status; then
	echo "the copy arrived changed (SHA-256 differs)" >&2
	exit 1
fi
chmod %o "$t"
sync -- "$t"
mv -f -- "$t" "$p"
trap - EXIT
sync -- "$(dirname -- "$p")"
`, q, sum, mode.Perm())
	_, stderr, exit, err := c.run(ctx, script, f)
	if err != nil {
		return false, err
	}
	if exit != 0 {
		return false, fmt.Errorf("ssh %s: copy %s to %s: %s", c.endpoint, local, remotePath, oneLine(stderr, exit))
	}
	return true, nil
}

// Platform is a machine's operating system and architecture as Go
// names them (GOOS, GOARCH).
type Platform struct {
	OS, Arch string
}

func (p Platform) String() string { return p.OS + "/" + p.Arch }

// Platform reports the remote machine's platform from `uname -sm`. A
// machine whose architecture Go does not name is an error that gives
// uname's own words.
func (c *Client) Platform(ctx context.Context) (Platform, error) {
	out, stderr, exit, err := c.Run(ctx, "uname -sm", nil)
	if err != nil {
		return Platform{}, err
	}
	if exit != 0 {
		return Platform{}, fmt.Errorf("ssh %s: uname -sm: %s", c.endpoint, oneLine(stderr, exit))
	}
	f := strings.Fields(string(out))
	if len(f) != 2 {
		return Platform{}, fmt.Errorf("ssh %s: uname -sm said %q", c.endpoint, strings.TrimSpace(string(out)))
	}
	arch, ok := GOARCH(f[1])
	if !ok {
		return Platform{}, fmt.Errorf("ssh %s: machine architecture %q has no Go build", c.endpoint, f[1])
	}
	return Platform{OS: strings.ToLower(f[0]), Arch: arch}, nil
}

// GOARCH maps a machine name from `uname -m` to Go's GOARCH. MIPS is
// left out: uname says "mips" or "mips64" for either byte order.
func GOARCH(machine string) (string, bool) {
	switch machine {
	case "x86_64", "amd64":
		return "amd64", true
	case "aarch64", "arm64":
		return "arm64", true
	case "i386", "i486", "i586", "i686", "x86":
		return "386", true
	case "armv5tel", "armv5tejl", "armv6l", "armv7l", "armv7", "armv8l", "arm":
		return "arm", true
	case "ppc64le":
		return "ppc64le", true
	case "ppc64":
		return "ppc64", true
	case "s390x":
		return "s390x", true
	case "riscv64":
		return "riscv64", true
	case "loongarch64":
		return "loong64", true
	}
	return "", false
}

// oneLine is a failed command's standard error as one line.
func oneLine(stderr []byte, exit int) string {
	s := strings.Join(strings.Fields(string(stderr)), " ")
	if s == "" {
		return fmt.Sprintf("exit status %d", exit)
	}
	return s
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
