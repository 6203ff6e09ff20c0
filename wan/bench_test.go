package wan

import (
	"io"
	"net"
	"testing"
	"time"
)

// BenchmarkThroughput streams bulk data one way through a link on
// loopback and reports the bytes per second that reach the target: with
// no delay and no cap (the proxy's own cost), and over links whose cap
// should be reached (100 Mb/s with 150 ms one way, the grid's far site).
//
//	go test -run XXX -bench Throughput -benchtime 16x ./wan
func BenchmarkThroughput(b *testing.B) {
	for _, bc := range []struct {
		name string
		cfg  Config
	}{
		{"raw", Config{}},
		{"150ms", Symmetric(150*time.Millisecond, 0)},
		{"150ms-100Mbps", Symmetric(150*time.Millisecond, 100_000_000/8)},
		{"50ms-10Mbps", Symmetric(50*time.Millisecond, 10_000_000/8)},
	} {
		b.Run(bc.name, func(b *testing.B) { benchThroughput(b, bc.cfg) })
	}
}

func benchThroughput(b *testing.B, cfg Config) {
	const chunk = 1 << 20
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	got := make(chan int64, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- -1
			return
		}
		defer c.Close()
		n, _ := io.Copy(io.Discard, c)
		got <- n
	}()
	l, err := Listen("127.0.0.1:0", ln.Addr().String(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	nc, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	c := nc.(*net.TCPConn)
	defer c.Close()
	data := make([]byte, chunk)
	b.SetBytes(chunk)
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		if _, err := c.Write(data); err != nil {
			b.Fatal(err)
		}
	}
	c.CloseWrite()
	n := <-got
	el := time.Since(start)
	b.StopTimer()
	if n != int64(b.N)*chunk {
		b.Fatalf("target got %d bytes, want %d", n, int64(b.N)*chunk)
	}
	b.ReportMetric(float64(n)*8/el.Seconds()/1e6, "Mb/s")
}
