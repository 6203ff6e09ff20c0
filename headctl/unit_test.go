package headctl

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"orrery/clusterfile"
	"orrery/remote"
)

// writeELF writes an ELF header (no sections, no segments) for the
// given class, byte order, OS/ABI and machine.
func writeELF(t *testing.T, class elf.Class, order binary.ByteOrder, abi elf.OSABI, machine elf.Machine) string {
	t.Helper()
	var buf bytes.Buffer
	data := elf.ELFDATA2LSB
	if order == binary.BigEndian {
		data = elf.ELFDATA2MSB
	}
	ident := [elf.EI_NIDENT]byte{0x7f, 'E', 'L', 'F', byte(class), byte(data), byte(elf.EV_CURRENT), byte(abi)}
	if class == elf.ELFCLASS64 {
		binary.Write(&buf, order, elf.Header64{Ident: ident, Type: uint16(elf.ET_EXEC), Machine: uint16(machine),
			Version: uint32(elf.EV_CURRENT), Ehsize: 64, Phentsize: 56, Shentsize: 64})
	} else {
		binary.Write(&buf, order, elf.Header32{Ident: ident, Type: uint16(elf.ET_EXEC), Machine: uint16(machine),
			Version: uint32(elf.EV_CURRENT), Ehsize: 52, Phentsize: 32, Shentsize: 40})
	}
	f := filepath.Join(t.TempDir(), "orrery")
	if err := os.WriteFile(f, buf.Bytes(), 0o755); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestELFPlatform(t *testing.T) {
	le, be := binary.LittleEndian, binary.BigEndian
	for _, c := range []struct {
		class   elf.Class
		order   binary.ByteOrder
		abi     elf.OSABI
		machine elf.Machine
		want    string
	}{
		{elf.ELFCLASS64, le, elf.ELFOSABI_NONE, elf.EM_X86_64, "linux/amd64"},
		{elf.ELFCLASS64, le, elf.ELFOSABI_LINUX, elf.EM_AARCH64, "linux/arm64"},
		{elf.ELFCLASS32, le, elf.ELFOSABI_NONE, elf.EM_386, "linux/386"},
		{elf.ELFCLASS32, le, elf.ELFOSABI_NONE, elf.EM_ARM, "linux/arm"},
		{elf.ELFCLASS64, le, elf.ELFOSABI_NONE, elf.EM_PPC64, "linux/ppc64le"},
		{elf.ELFCLASS64, be, elf.ELFOSABI_NONE, elf.EM_PPC64, "linux/ppc64"},
		{elf.ELFCLASS64, be, elf.ELFOSABI_NONE, elf.EM_S390, "linux/s390x"},
		{elf.ELFCLASS64, le, elf.ELFOSABI_NONE, elf.EM_RISCV, "linux/riscv64"},
		{elf.ELFCLASS64, le, elf.ELFOSABI_NONE, elf.EM_LOONGARCH, "linux/loong64"},
		{elf.ELFCLASS64, le, elf.ELFOSABI_FREEBSD, elf.EM_X86_64, "freebsd/amd64"},
		{elf.ELFCLASS32, le, elf.ELFOSABI_NONE, elf.EM_X86_64, "error"},
		{elf.ELFCLASS64, le, elf.ELFOSABI_NONE, elf.EM_SPARCV9, "error"},
		{elf.ELFCLASS64, le, elf.ELFOSABI_HPUX, elf.EM_X86_64, "error"},
	} {
		f := writeELF(t, c.class, c.order, c.abi, c.machine)
		p, err := ELFPlatform(f)
		got := p.String()
		if err != nil {
			got = "error"
			if strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), f) {
				t.Errorf("%v %v: error %q: want one line naming the file", c.machine, c.abi, err)
			}
		}
		if got != c.want {
			t.Errorf("%v %v %v %v: got %s (%v), want %s", c.class, c.order, c.abi, c.machine, got, err, c.want)
		}
	}

	// This test's own binary.
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if p, err := ELFPlatform(exe); err != nil || p != (remote.Platform{OS: runtime.GOOS, Arch: runtime.GOARCH}) {
		t.Errorf("the test binary: %v, %v; want %s/%s", p, err, runtime.GOOS, runtime.GOARCH)
	}
	// A script is not an executable it can check.
	script := filepath.Join(t.TempDir(), "orrery")
	os.WriteFile(script, []byte("#!/bin/sh\necho hi\n"), 0o755)
	if _, err := ELFPlatform(script); err == nil || !strings.Contains(err.Error(), "not an ELF executable") {
		t.Errorf("a script: %v", err)
	}
}

func testSpec() Spec {
	return Spec{
		Cluster:  clusterfile.Cluster{Name: "jerusalem", SSH: &clusterfile.Endpoint{User: "bob", Host: "gw.huji.example", Port: 2222}, KnownHosts: "/k"},
		Block:    "cluster jerusalem ssh bob@gw.huji.example:2222\n    node n1\n",
		Token:    "tok-\"secret\"\n",
		RootAddr: "127.0.0.1:7443",
		ID:       "0123456789ab-7",
		Binary:   "/bin/orrery",
	}
}

func TestChooseBinary(t *testing.T) {
	arm := writeELF(t, elf.ELFCLASS64, binary.LittleEndian, elf.ELFOSABI_NONE, elf.EM_AARCH64)
	amd := writeELF(t, elf.ELFCLASS64, binary.LittleEndian, elf.ELFOSABI_NONE, elf.EM_X86_64)
	linuxARM := remote.Platform{OS: "linux", Arch: "arm64"}
	for _, c := range []struct {
		name    string
		cluster string // the cluster's binary
		machine remote.Platform
		want    string // a binary, or the error
	}{
		{"same platform", "", remote.Platform{OS: "linux", Arch: "amd64"}, "/bin/orrery"},
		{"same platform, binary unused", arm, remote.Platform{OS: "linux", Arch: "amd64"}, "/bin/orrery"},
		{"other arch, no binary", "", linuxARM, "the head machine is linux/arm64 and the cluster has no `binary` for it (this orrery is linux/amd64)"},
		{"other arch, its binary", arm, linuxARM, arm},
		{"other arch, binary of a third", amd, remote.Platform{OS: "linux", Arch: "riscv64"}, "the head machine is linux/riscv64 and its `binary` " + amd + " is for linux/amd64"},
		{"other arch, binary not ELF", "/dev/null", linuxARM, "the head machine is linux/arm64 and its `binary` /dev/null is not an ELF executable (EOF)"},
	} {
		s := testSpec()
		s.BinaryPlatform = remote.Platform{OS: "linux", Arch: "amd64"}
		s.Cluster.Binary = c.cluster
		cfg, err := s.config()
		if err != nil {
			t.Fatal(err)
		}
		got, err := cfg.chooseBinary(c.machine)
		if err != nil {
			got = err.Error()
		}
		if got != c.want {
			t.Errorf("%s: got %q, want %q", c.name, got, c.want)
		}
	}
}

func TestConfigDefaultsAndErrors(t *testing.T) {
	s := testSpec()
	cfg, err := s.config()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.lease != clusterfile.DefaultLease || cfg.giveUp != clusterfile.DefaultLease || cfg.Timeout != remote.DefaultTimeout ||
		cfg.KeepAlive != DefaultKeepAlive || cfg.CommandTimeout != DefaultCommandTimeout || cfg.Probe != DefaultProbe || cfg.StatusEvery != DefaultStatusEvery {
		t.Errorf("defaults: lease %v, give up %v, timeout %v, keepalive %v, probe %v, status %v", cfg.lease, cfg.giveUp, cfg.Timeout, cfg.KeepAlive, cfg.Probe, cfg.StatusEvery)
	}
	if cfg.ep != (remote.Endpoint{User: "bob", Host: "gw.huji.example", Port: 2222}) || cfg.opts.KnownHosts != "/k" {
		t.Errorf("endpoint %v, options %+v", cfg.ep, cfg.opts)
	}
	s.Cluster.Lease = 90 * time.Minute
	if cfg, _ := s.config(); cfg.lease != 90*time.Minute || cfg.giveUp != 90*time.Minute {
		t.Errorf("the cluster's lease: %v, give up %v", cfg.lease, cfg.giveUp)
	}
	s.GiveUp = time.Minute
	if cfg, _ := s.config(); cfg.giveUp != time.Minute {
		t.Errorf("give up %v", cfg.giveUp)
	}

	for _, c := range []struct {
		name string
		edit func(*Spec)
		want string
	}{
		{"no ssh", func(s *Spec) { s.Cluster.SSH = nil }, "cluster jerusalem: its head runs on the root's machine: it has no ssh address to launch it by"},
		{"no token", func(s *Spec) { s.Token = "" }, "cluster jerusalem: no join token for its head"},
		{"no root", func(s *Spec) { s.RootAddr = "" }, "cluster jerusalem: no root address to relay its head's connections to"},
		{"bad id", func(s *Spec) { s.ID = "../x" }, `cluster jerusalem: experiment identity "../x" is not one short path element`},
		{"relative dir", func(s *Spec) { s.RemoteDir = "o" }, `cluster jerusalem: remote directory "o" is not absolute`},
	} {
		s := testSpec()
		c.edit(&s)
		_, err := s.config()
		var e *Error
		if err == nil || err.Error() != c.want || !errors.As(err, &e) || e.Cluster != "jerusalem" {
			t.Errorf("%s: %v, want %s", c.name, err, c.want)
		}
	}
}

func TestStartInput(t *testing.T) {
	s := testSpec()
	s.Lease = 90 * time.Minute
	cfg, err := s.config()
	if err != nil {
		t.Fatal(err)
	}
	b := cfg.startInput("/home/bob/.orrery/h/0123456789ab-7/root.sock")
	if bytes.Count(b, []byte("\n")) != 1 || b[len(b)-1] != '\n' {
		t.Fatalf("not one line: %q", b)
	}
	var in StartInput
	if err := json.Unmarshal(b, &in); err != nil {
		t.Fatal(err)
	}
	want := StartInput{Token: s.Token, Root: "unix:/home/bob/.orrery/h/0123456789ab-7/root.sock", Cluster: s.Block, Name: "jerusalem", Lease: "1h30m0s"}
	if in != want {
		t.Fatalf("got %+v, want %+v", in, want)
	}
	var keys map[string]any
	json.Unmarshal(b, &keys)
	for _, k := range []string{"token", "root", "cluster", "name", "lease"} {
		if _, ok := keys[k]; !ok {
			t.Errorf("no %q in %s", k, b)
		}
	}
}

func TestParseProbe(t *testing.T) {
	p, err := ParseProbe([]byte(`{"running":true,"pid":42,"build":"ab12","jobs":3}` + "\n"))
	if err != nil || p != (ProbeReport{Running: true, PID: 42, Build: "ab12", Jobs: 3}) {
		t.Fatalf("%+v, %v", p, err)
	}
	for _, bad := range []string{"", "running", `{"running":true}` + "\n" + `{"running":false}`, `{"running":"yes"}`} {
		if _, err := ParseProbe([]byte(bad)); err == nil || strings.Contains(err.Error(), "\n") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func TestParseStarted(t *testing.T) {
	for in, want := range map[string]int{"started 12\n": 12, "running 7": 7, "started": 0, "started x": 0, "stopped 3": 0, "started 0": 0, "": 0} {
		if pid, ok := parseStarted([]byte(in)); pid != want || ok != (want != 0) {
			t.Errorf("%q: %d, %v", in, pid, ok)
		}
	}
}

func TestDecide(t *testing.T) {
	for _, c := range []struct {
		p    ProbeReport
		want action
	}{
		{ProbeReport{}, actStart},
		{ProbeReport{Jobs: 3, Build: "b"}, actStart},
		{ProbeReport{Running: true, Build: "b"}, actKeep},
		{ProbeReport{Running: true, Build: "b", Jobs: 5}, actKeep},
		{ProbeReport{Running: true, Build: "a", Jobs: 1}, actKeepOther},
		{ProbeReport{Running: true, Build: "a"}, actReplace},
		{ProbeReport{Running: true}, actReplace},
	} {
		if got := decide(c.p, "b"); got != c.want {
			t.Errorf("%+v: %v, want %v", c.p, got, c.want)
		}
	}
}

func TestLimiter(t *testing.T) {
	l := limiter{every: 10 * time.Second}
	t0 := time.Unix(1000, 0)
	var said []int
	for s := 0; s <= 25; s++ {
		if l.allow("cut", t0.Add(time.Duration(s)*time.Second)) {
			said = append(said, s)
		}
	}
	if len(said) != 3 || said[0] != 0 || said[1] != 10 || said[2] != 20 {
		t.Fatalf("said at %v, want 0, 10, 20", said)
	}
	if !l.allow("restart", t0.Add(25*time.Second)) {
		t.Fatal("another kind was held back")
	}
	l.forget("cut")
	if !l.allow("cut", t0.Add(26*time.Second)) {
		t.Fatal("forget did not let the next one through")
	}
}

func TestExperimentID(t *testing.T) {
	id := ExperimentID([]byte("ca"), 7)
	// sha256("ca") = 6959097001d1...: its first 12 hex digits and the number.
	if id != "6959097001d1-7" || !validID.MatchString(id) {
		t.Fatalf("id %q", id)
	}
	if ExperimentID([]byte("ca"), 7) != id || ExperimentID([]byte("cb"), 7) == id || ExperimentID([]byte("ca"), 8) == id {
		t.Fatal("not a function of the CA and the number")
	}
	// The longest socket path it makes under a long home stays usable.
	sock := "/home/a-rather-long-user-name/.orrery/h/" + ExperimentID([]byte("ca"), 1<<40) + "/root.sock"
	if len(sock) > remote.MaxSocketPath {
		t.Fatalf("%s: %d bytes", sock, len(sock))
	}
}

func TestErrorOneLine(t *testing.T) {
	e := &Error{Cluster: "monash", Err: errors.New("head failed to start:\n  line one\n\tline two")}
	if e.Error() != "cluster monash: head failed to start: line one line two" {
		t.Fatalf("%q", e.Error())
	}
	if !errors.Is(e, e.Err) {
		t.Fatal("Unwrap")
	}
}
