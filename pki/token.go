package pki

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// TokenPrefix starts every join token; the digit is the token format's
// version.
const TokenPrefix = "orrery1."

// secretBytes is the number of random bytes in a join secret (256 bits).
const secretBytes = 32

// minSecretLen is the shortest secret a token may carry: 22 base64url
// characters, 128 bits.
const minSecretLen = 22

// redacted stands for the secret wherever a token is printed.
const redacted = "REDACTED"

// Token is a parsed join token: what a node needs to trust the root (the
// hash of its certificate authority's public key) and to be trusted by it
// (the join secret). Printing a Token with fmt or log/slog shows the hash
// and hides the secret; Encode gives the whole token.
type Token struct {
	// CAHash is the SHA-256 hash of the root CA's SubjectPublicKeyInfo
	// (DER).
	CAHash [32]byte
	// Secret is the join secret, base64url text.
	Secret string `json:"-"`
}

// Encode returns the token as the one line `orrery token` prints,
// secret included: write it only where the secret belongs.
func (t Token) Encode() string {
	return TokenPrefix + base64.RawURLEncoding.EncodeToString(t.CAHash[:]) + "." + t.Secret
}

// String returns the token with its secret replaced by REDACTED.
func (t Token) String() string {
	return TokenPrefix + base64.RawURLEncoding.EncodeToString(t.CAHash[:]) + "." + redacted
}

// GoString returns a Go-syntax form of the token with its secret
// replaced by REDACTED (for %#v).
func (t Token) GoString() string {
	return fmt.Sprintf("pki.Token{CAHash: %q, Secret: %q}", base64.RawURLEncoding.EncodeToString(t.CAHash[:]), redacted)
}

// Format prints the redacted token for every verb, so no verb (%d, %x,
// %+v, …) reaches the secret field.
func (t Token) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		io.WriteString(f, t.GoString())
		return
	}
	io.WriteString(f, t.String())
}

// LogValue logs the redacted token.
func (t Token) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("ca_hash", base64.RawURLEncoding.EncodeToString(t.CAHash[:])),
		slog.String("secret", redacted))
}

var (
	_ fmt.Stringer   = Token{}
	_ fmt.GoStringer = Token{}
	_ fmt.Formatter  = Token{}
	_ slog.LogValuer = Token{}
)

// ParseToken parses a join token, `orrery1.HASH.SECRET`: HASH is the
// unpadded base64url SHA-256 hash of the CA's public key and SECRET the
// join secret (base64url, at least 128 bits). Surrounding white space is
// ignored. Errors are one line and never quote the secret.
func ParseToken(s string) (Token, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Token{}, errors.New("join token: empty")
	}
	if !strings.HasPrefix(s, TokenPrefix) {
		if v, _, ok := strings.Cut(s, "."); ok && strings.HasPrefix(v, "orrery") && len(v) <= 12 {
			return Token{}, fmt.Errorf("join token: format %q is not supported (want %sHASH.SECRET; is this orrery older than the root's?)", v, TokenPrefix)
		}
		return Token{}, fmt.Errorf("join token: does not start with %q (want %sHASH.SECRET, as `orrery token` prints it)", TokenPrefix, TokenPrefix)
	}
	hash, secret, ok := strings.Cut(s[len(TokenPrefix):], ".")
	if !ok {
		return Token{}, fmt.Errorf("join token: want %sHASH.SECRET, found no secret", TokenPrefix)
	}
	var t Token
	raw, err := base64.RawURLEncoding.DecodeString(hash)
	if err != nil || len(raw) != len(t.CAHash) {
		return Token{}, errors.New("join token: the CA hash is not 43 base64url characters (a SHA-256 hash); was the token cut short?")
	}
	copy(t.CAHash[:], raw)
	if err := checkSecret(secret); err != nil {
		return Token{}, fmt.Errorf("join token: %w", err)
	}
	t.Secret = secret
	return t, nil
}

// checkSecret checks the form of a join secret; its errors never quote
// it.
func checkSecret(s string) error {
	if len(s) < minSecretLen {
		return fmt.Errorf("the secret is too short (%d characters, want at least %d)", len(s), minSecretLen)
	}
	for i := 0; i < len(s); i++ {
		if !isSecretChar(s[i]) {
			return errors.New("the secret has characters other than A-Z a-z 0-9 - _ (was the token copied whole?)")
		}
	}
	return nil
}

// isSecretChar reports whether c is in the base64url alphabet.
func isSecretChar(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_'
}

// newSecret returns a new random join secret.
func newSecret() (string, error) {
	b := make([]byte, secretBytes)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// writeSecret writes a new join secret into dir. The caller holds the
// directory's lock.
func writeSecret(dir string) error {
	s, err := newSecret()
	if err != nil {
		return err
	}
	return writeFileAtomic(dir, secretFile, []byte(s+"\n"))
}

// currentSecret returns the join secret on disk, reading it again when
// the file changed. The caller holds a.mu.
func (a *Authority) currentSecret() (string, error) {
	s, err := reread(&a.secret, a.dir, secretFile, func(data []byte, exists bool) (string, error) {
		if !exists {
			return "", fmt.Errorf("%s is missing (run `orrery token --rotate` to make a new one)", secretFile)
		}
		s := strings.TrimSpace(string(data))
		if err := checkSecret(s); err != nil {
			return "", fmt.Errorf("%s: %w (run `orrery token --rotate` to make a new one)", secretFile, err)
		}
		return s, nil
	})
	if err != nil {
		return "", fmt.Errorf("join secret: %w", err)
	}
	return s, nil
}

// Token returns the join token that `orrery token` prints: one line,
// `orrery1.HASH.SECRET`, URL-safe, with the current join secret.
func (a *Authority) Token() (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	s, err := a.currentSecret()
	if err != nil {
		return "", err
	}
	return Token{CAHash: a.caHash, Secret: s}.Encode(), nil
}

// Rotate replaces the join secret: tokens printed before no longer
// enrol nodes, while nodes already enrolled keep their certificates. A
// root running from the same state directory sees the new secret at
// once (CheckSecret reads it again).
func (a *Authority) Rotate() error {
	unlock, err := lockDir(a.dir)
	if err != nil {
		return fmt.Errorf("rotate join secret: %w", err)
	}
	defer unlock()
	if err := writeSecret(a.dir); err != nil {
		return fmt.Errorf("rotate join secret: %w", err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	_, err = a.currentSecret()
	return err
}

// CheckSecret reports whether s is the current join secret (as on disk
// now, so a rotation by another process counts at once). The comparison
// takes the same time whatever s is: both sides are hashed first, so not
// even the length leaks.
func (a *Authority) CheckSecret(s string) bool {
	a.mu.Lock()
	cur, err := a.currentSecret()
	a.mu.Unlock()
	if err != nil || s == "" {
		return false
	}
	x, y := sha256.Sum256([]byte(s)), sha256.Sum256([]byte(cur))
	return subtle.ConstantTimeCompare(x[:], y[:]) == 1
}
