package sandbox

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"
)

// ErrServerGone is returned by Call once the server's container has ended,
// broken its answer channel or been closed.
var ErrServerGone = errors.New("sandbox server gone")

// Server is a long-lived sandboxed container that answers requests: one
// line on its stdin, one line on its stdout, in order (the warm sanity
// checker). It runs with the same hardening as Run's containers. Calls are
// serialized; Close kills and removes the container.
type Server struct {
	ID   string
	Name string

	r       *Runner
	stdin   io.WriteCloser
	closeIO func()
	answers chan []byte // closed when the answer channel ends
	stderr  *headTail
	bg      sync.WaitGroup // the copy and line-reading goroutines

	mu        sync.Mutex // one call at a time
	closeOnce sync.Once
	closed    atomic.Bool
	errMu     sync.Mutex
	readErr   error
}

// StartServer creates and starts a server container from spec (its
// Entrypoint and Cmd start the server), and waits up to ready for its first
// line, which it returns: the server's word that it is ready. spec's
// StdoutCap caps one answer line. TimeLimit, Tick and StdoutTee are not
// used: a server lives until Close.
func (r *Runner) StartServer(ctx context.Context, spec Spec, ready time.Duration) (*Server, []byte, error) {
	spec.Stdin = true
	id, err := r.create(ctx, spec)
	if err != nil {
		return nil, nil, err
	}
	s := &Server{ID: id, Name: spec.Name, r: r, answers: make(chan []byte, 1), stderr: newHeadTail(spec.StderrCap)}
	fail := func(err error) (*Server, []byte, error) {
		s.Close()
		return nil, nil, err
	}
	hijack, err := r.cli.ContainerAttach(ctx, id, container.AttachOptions{Stream: true, Stdin: true, Stdout: true, Stderr: true})
	if err != nil {
		r.remove(context.WithoutCancel(ctx), id)
		return nil, nil, fmt.Errorf("attach container: %w", err)
	}
	s.stdin = hijack.Conn
	s.closeIO = hijack.Close
	pr, pw := io.Pipe()
	s.bg.Add(2)
	go func() {
		defer s.bg.Done()
		_, err := stdcopy.StdCopy(pw, s.stderr, hijack.Reader)
		if err == nil {
			err = io.EOF
		}
		pw.CloseWithError(err)
	}()
	go func() {
		defer s.bg.Done()
		defer close(s.answers)
		rd := bufio.NewReaderSize(pr, 64<<10)
		for {
			line, err := readLine(rd, spec.StdoutCap)
			if err != nil {
				s.errMu.Lock()
				s.readErr = err
				s.errMu.Unlock()
				_ = pr.CloseWithError(err)
				return
			}
			s.answers <- line
		}
	}()
	if err := r.cli.ContainerStart(ctx, id, container.StartOptions{}); err != nil {
		return fail(fmt.Errorf("start container: %w", err))
	}
	t := time.NewTimer(ready)
	defer t.Stop()
	select {
	case line, ok := <-s.answers:
		if !ok {
			err := s.err()
			s.Close()
			return nil, nil, fmt.Errorf("server %s ended before it was ready: %w: %s", spec.Name, err, s.Stderr())
		}
		return s, line, nil
	case <-t.C:
		return fail(fmt.Errorf("server %s not ready within %s", spec.Name, ready))
	case <-ctx.Done():
		return fail(ctx.Err())
	}
}

// Call writes one request line (a newline is added) and returns the answer
// line. When ctx ends first, or the server dies, the server is closed and
// the error says why; the caller starts another.
func (s *Server) Call(ctx context.Context, req []byte) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if bytes.IndexByte(req, '\n') >= 0 {
		return nil, fmt.Errorf("server request holds a newline")
	}
	// The write cannot block for long: the server reads its stdin in a
	// loop, and the engine buffers the stream.
	if _, err := s.stdin.Write(append(req, '\n')); err != nil {
		s.Close()
		return nil, fmt.Errorf("%w: write request: %v", ErrServerGone, err)
	}
	select {
	case line, ok := <-s.answers:
		if !ok {
			err := s.err()
			s.Close()
			return nil, fmt.Errorf("%w: %v", ErrServerGone, err)
		}
		return line, nil
	case <-ctx.Done():
		s.Close()
		return nil, fmt.Errorf("%w: no answer: %v", ErrServerGone, ctx.Err())
	}
}

// Close kills and removes the container and waits for its streams. It is
// safe to call more than once and from any goroutine.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		bg := context.Background()
		s.r.remove(bg, s.ID)
		if s.closeIO != nil {
			s.closeIO()
		}
		// Drain answers nobody will read, so the reader can end.
		go func() {
			for range s.answers {
			}
		}()
		s.bg.Wait()
		s.closed.Store(true)
	})
}

// Stderr is the kept head and tail of the server's stderr, once it is
// closed (before that, "": the stream is still being written).
func (s *Server) Stderr() string {
	if !s.closed.Load() {
		return ""
	}
	return s.stderr.String()
}

func (s *Server) err() error {
	s.errMu.Lock()
	defer s.errMu.Unlock()
	if s.readErr == nil {
		return io.EOF
	}
	return s.readErr
}

// readLine reads one line of at most max bytes (without its newline).
func readLine(rd *bufio.Reader, max int64) ([]byte, error) {
	var line []byte
	for {
		frag, err := rd.ReadSlice('\n')
		if int64(len(line)+len(frag)) > max+1 {
			return nil, fmt.Errorf("answer line over %d bytes", max)
		}
		line = append(line, frag...)
		switch {
		case err == nil:
			return line[:len(line)-1], nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		default:
			return nil, err
		}
	}
}
