package sandbox

// capBuffer keeps the first max bytes written to it and discards the rest,
// so a container flooding its output cannot exhaust the worker's memory.
// Writes never fail: the container must not block on a full pipe.
type capBuffer struct {
	max       int64
	buf       []byte
	truncated bool
	tee       interface{ Write([]byte) (int, error) } // gets what is kept
}

func (b *capBuffer) Write(p []byte) (int, error) {
	room := b.max - int64(len(b.buf))
	kept := p
	switch {
	case room <= 0:
		b.truncated = b.truncated || len(p) > 0
		kept = nil
	case int64(len(p)) > room:
		kept = p[:room]
		b.truncated = true
	}
	b.buf = append(b.buf, kept...)
	if b.tee != nil && len(kept) > 0 {
		_, _ = b.tee.Write(kept)
	}
	return len(p), nil
}

// headTail keeps the first and the last half of a capped budget of bytes:
// the start of a log says what ran, the end says how it died.
type headTail struct {
	head    capBuffer
	tail    []byte // ring of the last len(tail) bytes
	pos     int
	full    bool
	dropped int64
}

func newHeadTail(max int64) *headTail {
	half := max / 2
	return &headTail{head: capBuffer{max: half}, tail: make([]byte, max-half)}
}

func (h *headTail) Write(p []byte) (int, error) {
	n := len(p)
	if !h.head.truncated {
		room := int(h.head.max) - len(h.head.buf)
		if room >= len(p) {
			h.head.buf = append(h.head.buf, p...)
			return n, nil
		}
		h.head.buf = append(h.head.buf, p[:room]...)
		h.head.truncated = true
		p = p[room:]
	}
	if len(h.tail) == 0 {
		h.dropped += int64(len(p))
		return n, nil
	}
	for len(p) > 0 {
		c := copy(h.tail[h.pos:], p)
		if h.full {
			h.dropped += int64(c)
		}
		p = p[c:]
		h.pos += c
		if h.pos == len(h.tail) {
			h.pos, h.full = 0, true
		}
	}
	return n, nil
}

// String returns the kept bytes, with a marker where bytes were dropped.
func (h *headTail) String() string {
	if !h.head.truncated {
		return string(h.head.buf)
	}
	var tail []byte
	if h.full {
		tail = append(append(tail, h.tail[h.pos:]...), h.tail[:h.pos]...)
	} else {
		tail = h.tail[:h.pos]
	}
	if h.dropped == 0 {
		return string(h.head.buf) + string(tail)
	}
	return string(h.head.buf) + "\n[… output truncated …]\n" + string(tail)
}
