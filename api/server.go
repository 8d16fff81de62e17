package main

import (
	"context"
	_ "embed"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.temporal.io/sdk/client"
	"go.uber.org/zap"

	"github.com/gradeflow/gradeflow/dispatch"
	"github.com/gradeflow/gradeflow/intake"
	"github.com/gradeflow/gradeflow/store"
	"github.com/gradeflow/gradeflow/webhook"
)

// openAPI is the API's OpenAPI 3 description, served as it is.
//
//go:embed openapi.json
var openAPI []byte

// server holds the API's dependencies; every handler hangs off it.
type server struct {
	cfg      Config
	store    *store.Store
	temporal client.Client
	log      *zap.Logger
	tokens   tokens
	metrics  *metrics
	webhooks *http.Client // signs test deliveries with the webhook secret
	queue    *queueCache
	passes   *dispatch.PassBook // the fair matcher's passes, followed from the queue measurements
	intake   *intake.Service
	now      func() time.Time
}

// newServer wires a server from its dependencies. ctx is the server's
// lifetime: background work (queue refreshes) ends with it.
func newServer(ctx context.Context, cfg Config, st *store.Store, tc client.Client, log *zap.Logger) *server {
	s := &server{
		cfg:      cfg,
		store:    st,
		temporal: tc,
		log:      log,
		tokens:   tokens{portal: toBytes(cfg.PortalTokens), staff: toBytes(cfg.StaffTokens)},
		metrics:  newMetrics(),
		webhooks: webhook.NewClient(cfg.WebhookSecret, 10*time.Second, cfg.WebhookPrivate),
		intake: intake.New(st, tc, intake.Options{
			MaxSubmission: cfg.MaxUpload, AllowPrivateWebhooks: cfg.WebhookPrivate, Log: log,
			RuntimeImages: cfg.RuntimeImages, MaxDataset: cfg.MaxDataset,
		}),
		now: time.Now,
	}
	s.passes = dispatch.NewPassBook()
	s.queue = &queueCache{ttl: cfg.QueueCacheTTL, measure: s.measureQueue, base: ctx}
	return s
}

func toBytes(ss []string) [][]byte {
	out := make([][]byte, 0, len(ss))
	for _, s := range ss {
		out = append(out, []byte(s))
	}
	return out
}

// route is one endpoint of the API.
type route struct {
	method  string
	path    string
	access  access
	timeout time.Duration // 0: the configured request timeout
	handler http.HandlerFunc
}

// routes lists every endpoint. The OpenAPI document must list the same.
func (s *server) routes() []route {
	return []route{
		{method: http.MethodGet, path: "/healthz", access: accessOpen, handler: s.healthz},
		{method: http.MethodGet, path: "/readyz", access: accessOpen, handler: s.readyz},
		{method: http.MethodGet, path: "/metrics", access: accessOpen,
			handler: promhttp.HandlerFor(s.metrics.registry, promhttp.HandlerOpts{}).ServeHTTP},
		{method: http.MethodGet, path: "/v1/openapi.json", access: accessOpen, handler: s.openAPI},

		{method: http.MethodPost, path: "/v1/submissions", access: accessPortal, handler: s.createSubmission},
		{method: http.MethodGet, path: "/v1/submissions", access: accessPortal, handler: s.listSubmissions},
		{method: http.MethodGet, path: "/v1/submissions/{id}", access: accessPortal, handler: s.getSubmission},
		{method: http.MethodGet, path: "/v1/submissions/{id}/results.json", access: accessPortal, handler: s.resultsJSON},
		{method: http.MethodPost, path: "/v1/submissions/{id}/cancel", access: accessPortal, handler: s.cancelSubmission},
		{method: http.MethodPost, path: "/v1/submissions/{id}/release", access: accessStaff, handler: s.releaseSubmission},
		{method: http.MethodPost, path: "/v1/submissions/{id}/regrade", access: accessStaff, handler: s.regradeSubmission},
		{method: http.MethodGet, path: "/v1/queue", access: accessPortal, handler: s.getQueue},

		{method: http.MethodGet, path: "/v1/assignments", access: accessStaff, handler: s.listAssignments},
		{method: http.MethodGet, path: "/v1/assignments/{name}", access: accessStaff, handler: s.getAssignment},
		{method: http.MethodPut, path: "/v1/assignments/{name}", access: accessStaff,
			timeout: s.cfg.AssignmentTimeout, handler: s.putAssignment},
		{method: http.MethodPost, path: "/v1/assignments/{name}/webhook-test", access: accessStaff, handler: s.testWebhook},
		{method: http.MethodPost, path: "/v1/assignments/{name}/regrade", access: accessStaff,
			timeout: s.cfg.AssignmentTimeout, handler: s.regradeAll},
		{method: http.MethodGet, path: "/v1/regrades/{id}", access: accessStaff, handler: s.getRegrade},
		{method: http.MethodPut, path: "/v1/datasets/{name}", access: accessStaff,
			timeout: s.cfg.AssignmentTimeout, handler: s.putDataset},
		{method: http.MethodGet, path: "/v1/datasets/{name}", access: accessStaff, handler: s.getDataset},
	}
}

// router builds the mux router of every route.
func (s *server) router() *mux.Router {
	r := mux.NewRouter()
	r.Use(matched)
	for _, rt := range s.routes() {
		timeout := rt.timeout
		if timeout <= 0 {
			timeout = s.cfg.RequestTimeout
		}
		r.Handle(rt.path, s.authorize(rt.access, withTimeout(timeout, rt.handler))).Methods(rt.method)
	}
	r.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.fail(w, r, errorf(http.StatusNotFound, codeNotFound, "no such endpoint: %s", r.URL.Path))
	})
	r.MethodNotAllowedHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.fail(w, r, errorf(http.StatusMethodNotAllowed, codeMethodNotAllowed, "method %s not allowed here", r.Method))
	})
	return r
}

// handler is the whole HTTP handler: the router behind logging and metrics.
// Every request starts with the default request timeout on its
// connection; a route with its own timeout replaces it.
func (s *server) handler() http.Handler {
	r := s.router()
	return s.observe(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		setDeadlines(w, s.cfg.RequestTimeout)
		r.ServeHTTP(w, req)
	}))
}

// healthz answers 200 while the process serves.
func (s *server) healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readyz answers 200 when both Temporal and MongoDB answer, 503 naming
// the ones that do not otherwise.
func (s *server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	checks := map[string]func(context.Context) error{
		"temporal": func(ctx context.Context) error {
			_, err := s.temporal.CheckHealth(ctx, &client.CheckHealthRequest{})
			return err
		},
		"mongodb": s.store.Ping,
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	results := map[string]string{}
	var failed []string
	for name, check := range checks {
		wg.Go(func() {
			err := check(ctx)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				results[name] = err.Error()
				failed = append(failed, name)
				return
			}
			results[name] = "ok"
		})
	}
	wg.Wait()
	if len(failed) > 0 {
		slices.Sort(failed)
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{
			"error":  "not ready: " + strings.Join(failed, ", ") + " unavailable",
			"code":   codeUnavailable,
			"checks": results,
		})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "ready", "checks": results})
}

// openAPI serves the embedded OpenAPI document.
func (s *server) openAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(openAPI)
}
