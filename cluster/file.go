package cluster

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// Load reads a cluster file: one node per line,
//
//	node NAME [job-limit N] [cpus N] [cpu-share F] [memory SIZE] [speed F]
//
// cpu-share is how many CPUs' worth of time the node's processes get
// (enforced with a cgroup CPU quota: 0.5 is half of one CPU); memory
// (enforced with a cgroup memory limit) takes a suffix K, M or G; cpus is
// the CPUs the node reports (default: its share rounded up); speed is the
// relative speed it reports (default: share ÷ cpus). '#' starts a comment.
func Load(path string) (Spec, error) {
	f, err := os.Open(path)
	if err != nil {
		return Spec{}, err
	}
	defer f.Close()
	return Parse(path, f)
}

// Parse reads a cluster file from r; name is used in messages.
func Parse(name string, r io.Reader) (Spec, error) {
	var s Spec
	seen := map[string]int{}
	sc := bufio.NewScanner(r)
	for line := 1; sc.Scan(); line++ {
		text, _, _ := strings.Cut(sc.Text(), "#")
		f := strings.Fields(text)
		if len(f) == 0 {
			continue
		}
		at := func(i int) string {
			return fmt.Sprintf("%s:%d:%d", name, line, strings.Index(sc.Text(), f[i])+1)
		}
		if f[0] != "node" || len(f) < 2 {
			return Spec{}, fmt.Errorf("%s: expected: node NAME [job-limit N] [cpus N] [cpu-share F] [memory SIZE] [speed F]", at(0))
		}
		n := NodeSpec{Name: f[1]}
		if prev, dup := seen[n.Name]; dup {
			return Spec{}, fmt.Errorf("%s: node %s is already on line %d", at(1), n.Name, prev)
		}
		seen[n.Name] = line
		for i := 2; i < len(f); i += 2 {
			if i+1 >= len(f) {
				return Spec{}, fmt.Errorf("%s: %s needs a value", at(i), f[i])
			}
			if err := n.set(f[i], f[i+1]); err != nil {
				where := at(i + 1)
				if errors.Is(err, errUnknown) {
					where = at(i)
				}
				return Spec{}, fmt.Errorf("%s: %v", where, err)
			}
		}
		n.fill()
		s.Nodes = append(s.Nodes, n)
	}
	if err := sc.Err(); err != nil {
		return Spec{}, fmt.Errorf("%s: %w", name, err)
	}
	if len(s.Nodes) == 0 {
		return Spec{}, fmt.Errorf("%s: no nodes", name)
	}
	return s, nil
}

// errUnknown is the error of an attribute the file format does not have.
var errUnknown = errors.New("unknown attribute")

// set sets one attribute of a node.
func (n *NodeSpec) set(key, val string) error {
	var err error
	switch key {
	case "job-limit":
		n.JobLimit, err = positiveInt(val)
	case "cpus":
		n.CPUs, err = positiveInt(val)
	case "cpu-share":
		n.CPUShare, err = strconv.ParseFloat(val, 64)
		if err == nil && n.CPUShare <= 0 {
			err = fmt.Errorf("must be above 0")
		}
	case "memory":
		n.Memory, err = ParseSize(val)
	case "speed":
		n.Speed, err = strconv.ParseFloat(val, 64)
		if err == nil && n.Speed <= 0 {
			err = fmt.Errorf("must be above 0")
		}
	default:
		return fmt.Errorf("%w %q (want job-limit, cpus, cpu-share, memory or speed)", errUnknown, key)
	}
	if err != nil {
		return fmt.Errorf("%s %q: %v", key, val, err)
	}
	return nil
}

// fill derives what the file left out.
func (n *NodeSpec) fill() {
	if n.CPUs == 0 && n.CPUShare > 0 {
		n.CPUs = int(n.CPUShare + 0.999)
	}
	if n.Speed == 0 && n.CPUShare > 0 {
		n.Speed = n.CPUShare / float64(max(n.CPUs, 1))
	}
}

func positiveInt(s string) (int, error) {
	v, err := strconv.Atoi(s)
	if err == nil && v < 1 {
		err = fmt.Errorf("must be at least 1")
	}
	return v, err
}

// ParseSize reads a size in bytes with an optional K, M or G suffix:
// 512M, 2G, 1048576.
func ParseSize(s string) (int64, error) {
	mult := int64(1)
	switch {
	case strings.HasSuffix(s, "K"):
		mult, s = 1<<10, strings.TrimSuffix(s, "K")
	case strings.HasSuffix(s, "M"):
		mult, s = 1<<20, strings.TrimSuffix(s, "M")
	case strings.HasSuffix(s, "G"):
		mult, s = 1<<30, strings.TrimSuffix(s, "G")
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < 1 {
		return 0, fmt.Errorf("want a size such as 512M")
	}
	return v * mult, nil
}
