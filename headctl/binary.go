package headctl

import (
	"debug/elf"
	"encoding/binary"
	"fmt"

	"orrery/remote"
)

// ELFPlatform reads the platform an executable is built for from its
// ELF header: the operating system from its OS/ABI byte (Go's Linux
// builds say none, System V, or Linux) and the architecture from its
// machine, class and byte order.
func ELFPlatform(file string) (remote.Platform, error) {
	f, err := elf.Open(file)
	if err != nil {
		return remote.Platform{}, fmt.Errorf("%s is not an ELF executable (%v)", file, err)
	}
	defer f.Close()
	if f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
		return remote.Platform{}, fmt.Errorf("%s is an ELF %v, not an executable", file, f.Type)
	}
	var p remote.Platform
	switch f.OSABI {
	case elf.ELFOSABI_NONE, elf.ELFOSABI_LINUX:
		p.OS = "linux"
	case elf.ELFOSABI_FREEBSD:
		p.OS = "freebsd"
	case elf.ELFOSABI_NETBSD:
		p.OS = "netbsd"
	case elf.ELFOSABI_OPENBSD:
		p.OS = "openbsd"
	case elf.ELFOSABI_SOLARIS:
		p.OS = "solaris"
	default:
		return remote.Platform{}, fmt.Errorf("%s is for an operating system Go does not name (ELF OS/ABI %v)", file, f.OSABI)
	}
	is64 := f.Class == elf.ELFCLASS64
	little := f.ByteOrder == binary.LittleEndian
	switch {
	case f.Machine == elf.EM_X86_64 && is64:
		p.Arch = "amd64"
	case f.Machine == elf.EM_386 && !is64:
		p.Arch = "386"
	case f.Machine == elf.EM_AARCH64 && is64:
		p.Arch = "arm64"
	case f.Machine == elf.EM_ARM && !is64:
		p.Arch = "arm"
	case f.Machine == elf.EM_PPC64 && is64 && little:
		p.Arch = "ppc64le"
	case f.Machine == elf.EM_PPC64 && is64:
		p.Arch = "ppc64"
	case f.Machine == elf.EM_S390 && is64:
		p.Arch = "s390x"
	case f.Machine == elf.EM_RISCV && is64:
		p.Arch = "riscv64"
	case f.Machine == elf.EM_LOONGARCH && is64:
		p.Arch = "loong64"
	default:
		return remote.Platform{}, fmt.Errorf("%s is for a machine Go does not name (ELF %v, %v)", file, f.Machine, f.Class)
	}
	return p, nil
}

// chooseBinary picks the executable to run on a head machine of
// platform p: this build when the platforms match, else the cluster's
// `binary`, which must be an ELF executable for p.
func (c *config) chooseBinary(p remote.Platform) (string, error) {
	if p == c.platform {
		return c.Binary, nil
	}
	if c.Cluster.Binary == "" {
		return "", fmt.Errorf("the head machine is %s and the cluster has no `binary` for it (this orrery is %s)", p, c.platform)
	}
	got, err := ELFPlatform(c.Cluster.Binary)
	if err != nil {
		return "", fmt.Errorf("the head machine is %s and its `binary` %v", p, err)
	}
	if got != p {
		return "", fmt.Errorf("the head machine is %s and its `binary` %s is for %s", p, c.Cluster.Binary, got)
	}
	return c.Cluster.Binary, nil
}
