package main

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.uber.org/zap"
)

// HeaderRequestID carries the request ID, taken from the client when it
// sends a sane one, generated otherwise, and echoed in the answer.
const HeaderRequestID = "X-Request-ID"

// requestInfo is what the handlers tell the access log about a request.
type requestInfo struct {
	id    string
	route string // the matched route template, or "unmatched"
	err   error  // a server-side error, logged with the request
	role  role   // the bearer token's role, once authorized
}

type requestInfoKey struct{}

// requestInfoOf returns the request's info; handlers always have one.
func requestInfoOf(ctx context.Context) *requestInfo {
	if ri, ok := ctx.Value(requestInfoKey{}).(*requestInfo); ok {
		return ri
	}
	return &requestInfo{}
}

// statusRecorder remembers the status a handler answered with.
type statusRecorder struct {
	http.ResponseWriter
	status int
	bytes  int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(b)
	r.bytes += n
	return n, err
}

// Unwrap lets http.ResponseController reach the server's writer.
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// unwrapWriter returns the server's own writer, which http.MaxBytesReader
// needs to tell the server to close an over-long request's connection.
func unwrapWriter(w http.ResponseWriter) http.ResponseWriter {
	for {
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return w
		}
		w = u.Unwrap()
	}
}

// observe gives every request an ID, and logs and measures it.
func (s *server) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ri := &requestInfo{id: r.Header.Get(HeaderRequestID), route: "unmatched"}
		if !validRequestID(ri.id) {
			ri.id = newRequestID()
		}
		w.Header().Set(HeaderRequestID, ri.id)
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r.WithContext(context.WithValue(r.Context(), requestInfoKey{}, ri)))
		if rec.status == 0 {
			rec.status = http.StatusOK
		}
		elapsed := time.Since(start)
		code := strconv.Itoa(rec.status)
		s.metrics.requests.WithLabelValues(ri.route, r.Method, code).Inc()
		s.metrics.latency.WithLabelValues(ri.route, r.Method, code).Observe(elapsed.Seconds())
		fields := []zap.Field{
			zap.String("request_id", ri.id),
			zap.String("method", r.Method),
			zap.String("route", ri.route),
			zap.Int("status", rec.status),
			zap.Duration("latency", elapsed),
			zap.Int("bytes", rec.bytes),
		}
		if ri.err != nil {
			s.log.Error("request", append(fields, zap.Error(ri.err))...)
			return
		}
		s.log.Info("request", fields...)
	})
}

// matched records the route template of a matched request. It runs as mux
// middleware, after matching.
func matched(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if route := mux.CurrentRoute(r); route != nil {
			if tpl, err := route.GetPathTemplate(); err == nil {
				requestInfoOf(r.Context()).route = tpl
			}
		}
		next.ServeHTTP(w, r)
	})
}

// withTimeout bounds a request by its route's timeout d: its work (the
// context), reading its body and writing its answer (the connection's
// deadlines), so that a slow upload holds a connection only as long as
// its own route allows.
func withTimeout(d time.Duration, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		setDeadlines(w, d)
		ctx, cancel := context.WithTimeout(r.Context(), d)
		defer cancel()
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// writeGrace is how much longer than its work a request may take to send
// its answer.
const writeGrace = 10 * time.Second

// setDeadlines sets the connection's read deadline to d from now and its
// write deadline to d plus writeGrace. A writer that cannot take deadlines
// (a test recorder) is left alone.
func setDeadlines(w http.ResponseWriter, d time.Duration) {
	rc := http.NewResponseController(w)
	now := time.Now()
	_ = rc.SetReadDeadline(now.Add(d))
	_ = rc.SetWriteDeadline(now.Add(d + writeGrace))
}

func validRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("-_.:", c)) {
			return false
		}
	}
	return true
}

func newRequestID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// access is who may call a route.
type access int

const (
	accessOpen   access = iota // anyone
	accessPortal               // portal or staff tokens
	accessStaff                // staff tokens only
)

// role is what a bearer token grants.
type role int

const (
	roleNone role = iota
	rolePortal
	roleStaff
)

// tokens maps bearer tokens to roles.
type tokens struct {
	portal, staff [][]byte
}

// roleOf returns the role token grants, comparing in constant time.
func (t tokens) roleOf(token string) role {
	if token == "" {
		return roleNone
	}
	b := []byte(token)
	for _, s := range t.staff {
		if subtle.ConstantTimeCompare(b, s) == 1 {
			return roleStaff
		}
	}
	for _, p := range t.portal {
		if subtle.ConstantTimeCompare(b, p) == 1 {
			return rolePortal
		}
	}
	return roleNone
}

// authorize lets a request through when its bearer token grants access.
func (s *server) authorize(need access, next http.Handler) http.Handler {
	if need == accessOpen {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		got := roleNone
		if ok {
			got = s.tokens.roleOf(strings.TrimSpace(token))
		}
		switch {
		case got == roleNone:
			w.Header().Set("WWW-Authenticate", `Bearer realm="gradeflow"`)
			s.fail(w, r, errorf(http.StatusUnauthorized, codeUnauthorized, "missing or invalid bearer token"))
		case need == accessStaff && got != roleStaff:
			s.fail(w, r, errorf(http.StatusForbidden, codeForbidden, "this endpoint needs a staff token"))
		default:
			requestInfoOf(r.Context()).role = got
			next.ServeHTTP(w, r)
		}
	})
}

// isStaff reports whether the request came with a staff token.
func isStaff(ctx context.Context) bool { return requestInfoOf(ctx).role == roleStaff }

// metrics are the API's Prometheus metrics, on a registry of their own.
type metrics struct {
	registry    *prometheus.Registry
	requests    *prometheus.CounterVec
	latency     *prometheus.HistogramVec
	accepted    prometheus.Counter
	duplicates  prometheus.Counter
	rateLimited prometheus.Counter
}

func newMetrics() *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gradeflow_api_requests_total",
			Help: "HTTP requests answered, by route template, method and status code.",
		}, []string{"route", "method", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "gradeflow_api_request_duration_seconds",
			Help:    "HTTP request latency, by route template, method and status code.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"route", "method", "code"}),
		accepted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gradeflow_api_submissions_accepted_total",
			Help: "Submissions accepted and started (regrades included).",
		}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gradeflow_api_submissions_duplicate_total",
			Help: "Submissions answered with an existing submission of the same ID.",
		}),
		rateLimited: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gradeflow_api_rate_limited_total",
			Help: "Submissions refused with 429 by the per-student rate limit.",
		}),
	}
	m.registry.MustRegister(m.requests, m.latency, m.accepted, m.duplicates, m.rateLimited,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}
