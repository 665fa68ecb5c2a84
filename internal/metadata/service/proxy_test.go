package service

import (
	"io"
	"net"
	"sync"
	"testing"
)

// proxy forwards TCP connections from a loopback port to a server. Stop
// closes its port and every connection through it, as a server that goes
// down does (connections reset, new ones refused); Start opens the same
// port again.
type proxy struct {
	t        testing.TB
	addr     string // where it listens
	upstream string

	mu    sync.Mutex
	l     net.Listener
	conns map[net.Conn]bool
	wg    sync.WaitGroup
}

// newProxy starts a proxy to upstream (host:port), stopped when the test
// ends.
func newProxy(t testing.TB, upstream string) *proxy {
	t.Helper()
	p := &proxy{t: t, upstream: upstream, conns: map[net.Conn]bool{}}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.addr = l.Addr().String()
	p.serve(l)
	t.Cleanup(p.Stop)
	return p
}

func (p *proxy) serve(l net.Listener) {
	p.mu.Lock()
	p.l = l
	p.mu.Unlock()
	p.wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", p.upstream)
			if err != nil {
				c.Close()
				continue
			}
			if !p.track(c, up) {
				return
			}
			p.wg.Go(func() { io.Copy(up, c); up.Close() })
			p.wg.Go(func() { io.Copy(c, up); c.Close() })
		}
	})
}

// track records the two ends of a connection; false when the proxy was
// stopped meanwhile (and then it closed them).
func (p *proxy) track(conns ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.l == nil {
		for _, c := range conns {
			c.Close()
		}
		return false
	}
	for _, c := range conns {
		p.conns[c] = true
	}
	return true
}

// Stop closes the port and every connection through it.
func (p *proxy) Stop() {
	p.mu.Lock()
	if p.l != nil {
		p.l.Close()
		p.l = nil
	}
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
	p.mu.Unlock()
	p.wg.Wait()
}

// Start opens the port again.
func (p *proxy) Start() {
	l, err := net.Listen("tcp", p.addr)
	if err != nil {
		p.t.Errorf("proxy: listening on %s again: %v", p.addr, err)
		return
	}
	p.serve(l)
}
