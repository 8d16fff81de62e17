//go:build stack

package test

import (
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"
)

// tcpProxy forwards a port to a backend. Down closes the listener and every
// connection, making the backend unreachable to clients that go through it
// (the workers), as a network partition would; Up listens again on the same
// port.
type tcpProxy struct {
	addr    string
	backend string
	// Shaping, when set: each direction is a link of its own, shared by
	// every connection through the proxy.
	toBackend, toClient *link

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func newTCPProxy(backend string) (*tcpProxy, error) {
	p := &tcpProxy{addr: fmt.Sprintf("127.0.0.1:%d", freePort()), backend: backend, conns: map[net.Conn]struct{}{}}
	return p, p.up()
}

// newShapedProxy is a proxy whose links add rtt/2 of delay each way and
// carry rate bytes per second each way: a MongoDB far away.
func newShapedProxy(backend string, rtt time.Duration, rate float64) (*tcpProxy, error) {
	p := &tcpProxy{addr: fmt.Sprintf("127.0.0.1:%d", freePort()), backend: backend, conns: map[net.Conn]struct{}{},
		toBackend: &link{delay: rtt / 2, rate: rate}, toClient: &link{delay: rtt / 2, rate: rate}}
	return p, p.up()
}

func (p *tcpProxy) up() error {
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		return fmt.Errorf("proxy listen: %w", err)
	}
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				p.serve(c)
			}()
		}
	}()
	return nil
}

func (p *tcpProxy) serve(c net.Conn) {
	b, err := net.Dial("tcp", p.backend)
	if err != nil {
		c.Close()
		return
	}
	if !p.track(c, b) {
		return
	}
	done := make(chan struct{}, 2)
	go func() { _ = p.toBackend.copy(b, c); done <- struct{}{} }()
	go func() { _ = p.toClient.copy(c, b); done <- struct{}{} }()
	<-done
	c.Close()
	b.Close()
	<-done
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, b)
	p.mu.Unlock()
}

// track registers a connection pair, refusing it when the proxy is down.
func (p *tcpProxy) track(c, b net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln == nil {
		c.Close()
		b.Close()
		return false
	}
	p.conns[c], p.conns[b] = struct{}{}, struct{}{}
	return true
}

func (p *tcpProxy) down() {
	p.mu.Lock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
}

// link is one direction of a shaped network path: bytes leave at most at
// rate bytes per second, in order, and arrive delay later. Its state is
// shared by the connections that use it, as they share a real uplink.
type link struct {
	delay time.Duration
	rate  float64 // bytes per second

	mu   sync.Mutex
	free time.Time // when the link has sent everything handed to it
}

// sent returns when n bytes handed to the link now have arrived.
func (l *link) sent(n int) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	if l.free.Before(now) {
		l.free = now
	}
	l.free = l.free.Add(time.Duration(float64(n) / l.rate * float64(time.Second)))
	return l.free.Add(l.delay)
}

// copy copies src to dst through the link (straight through for a nil
// link), until either side ends.
func (l *link) copy(dst io.Writer, src io.Reader) error {
	if l == nil {
		_, err := io.Copy(dst, src)
		return err
	}
	type chunk struct {
		data []byte
		at   time.Time
	}
	// A bounded queue: the link's buffer. A full one stops reading, and
	// TCP's flow control pushes back on the sender.
	q := make(chan chunk, 64)
	errc := make(chan error, 1)
	go func() {
		defer close(q)
		for {
			buf := make([]byte, 32<<10)
			n, err := src.Read(buf)
			if n > 0 {
				q <- chunk{data: buf[:n], at: l.sent(n)}
			}
			if err != nil {
				errc <- err
				return
			}
		}
	}()
	for c := range q {
		time.Sleep(time.Until(c.at))
		if _, err := dst.Write(c.data); err != nil {
			// Unblock the reader: the caller closes src next.
			go func() {
				for range q {
				}
			}()
			return err
		}
	}
	return <-errc
}

func (p *tcpProxy) close() {
	p.down()
	p.wg.Wait()
}

// proxiedURI rewrites a single-host MongoDB URI to go through addr, with a
// direct connection so the driver never discovers its way around the proxy.
func proxiedURI(uri, addr string) (string, string, error) {
	u, err := url.Parse(uri)
	if err != nil || u.Scheme != "mongodb" || strings.Contains(u.Host, ",") || u.Host == "" {
		return "", "", fmt.Errorf("cannot proxy MongoDB URI %q: the fault tests need a single-host mongodb:// URI", uri)
	}
	backend := u.Host
	if !strings.Contains(backend, ":") {
		backend += ":27017"
	}
	u.Host = addr
	q := u.Query()
	q.Set("directConnection", "true")
	u.RawQuery = q.Encode()
	if u.Path == "" {
		u.Path = "/"
	}
	return u.String(), backend, nil
}
