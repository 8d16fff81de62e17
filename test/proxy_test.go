//go:build stack

package test

import (
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"sync"
)

// tcpProxy forwards a port to a backend. Down closes the listener and every
// connection, making the backend unreachable to clients that go through it
// (the workers), as a network partition would; Up listens again on the same
// port.
type tcpProxy struct {
	addr    string
	backend string

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func newTCPProxy(backend string) (*tcpProxy, error) {
	p := &tcpProxy{addr: fmt.Sprintf("127.0.0.1:%d", freePort()), backend: backend, conns: map[net.Conn]struct{}{}}
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
	go func() { _, _ = io.Copy(b, c); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, b); done <- struct{}{} }()
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
