package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/mux"
	"go.temporal.io/api/serviceerror"
	"go.uber.org/zap"

	"github.com/gradeflow/gradeflow/store"
)

// testConfig is the configuration tests start from.
func testConfig() Config {
	return Config{
		PortalTokens:      []string{"portal-token"},
		StaffTokens:       []string{"staff-token"},
		MaxUpload:         1 << 20,
		MaxAssignment:     4 << 20,
		MaxDataset:        8 << 20,
		RatePerMinute:     0,
		RateBurst:         0,
		WebhookSecret:     "test-secret",
		WebhookPrivate:    true, // the test receivers listen on loopback
		RequestTimeout:    15 * time.Second,
		AssignmentTimeout: 30 * time.Second,
		QueueWindow:       10 * time.Minute,
		WorkerFresh:       30 * time.Second,
		QueueCacheTTL:     0,
		DefaultRun:        time.Minute,
	}
}

func TestRequestTimeout(t *testing.T) {
	s := &server{log: zap.NewNop(), metrics: newMetrics()}
	slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
		s.fail(w, r, fmt.Errorf("wait: %w", r.Context().Err()))
	})
	rec := httptest.NewRecorder()
	s.observe(withTimeout(10*time.Millisecond, slow)).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if rec.Code != http.StatusGatewayTimeout {
		t.Errorf("status %d, want 504: %s", rec.Code, rec.Body)
	}
}

func TestAsAPIError(t *testing.T) {
	tests := []struct {
		err    error
		status int
		code   string
	}{
		{&apiError{Status: 418, Code: "teapot"}, 418, "teapot"},
		{fmt.Errorf("wrapped: %w", &http.MaxBytesError{Limit: 5}), 413, codeTooLarge},
		{fmt.Errorf("x: %w", context.DeadlineExceeded), 504, codeTimeout},
		{fmt.Errorf("submission x: %w", store.ErrNotFound), 404, codeNotFound},
		{fmt.Errorf("describe: %w", serviceerror.NewNotFound("workflow not found")), 404, codeNotFound},
		{serviceerror.NewUnavailable("down"), 503, codeUnavailable},
		{fmt.Errorf("file: %w", store.ErrTooLarge), 413, codeTooLarge},
		{errors.New("boom"), 500, codeInternal},
	}
	for _, tt := range tests {
		if got := asAPIError(tt.err); got.Status != tt.status || got.Code != tt.code {
			t.Errorf("%v → %d %s, want %d %s", tt.err, got.Status, got.Code, tt.status, tt.code)
		}
	}
}

func TestETAModel(t *testing.T) {
	f := func(x float64) *float64 { return &x }
	tests := []struct {
		name     string
		q        queueStats
		ahead    int64
		preQueue bool
		want     float64
		ok       bool
	}{
		{"no slots", queueStats{defaultRun: 60}, 0, false, 0, false},
		{"idle slot, default run", queueStats{ExecutionSlots: 1, defaultRun: 60}, 0, false, 60, true},
		{"busy single slot", queueStats{ExecutionSlots: 1, Running: 1, MedianRunSeconds: f(10), defaultRun: 60}, 0, false, 20, true},
		{"saturated: ((p+1)/S + 1)·r", queueStats{ExecutionSlots: 4, Running: 4, MedianRunSeconds: f(20), defaultRun: 60}, 7, false, 60, true},
		{"throughput beats S/r", queueStats{ExecutionSlots: 2, Running: 2, MedianRunSeconds: f(60), ThroughputPerMinute: 6, defaultRun: 60}, 9, false, 160, true},
		{"before the queue adds sanity", queueStats{ExecutionSlots: 1, MedianRunSeconds: f(10), MedianSanitySeconds: f(3), defaultRun: 60}, 0, true, 13, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := tt.q.eta(tt.ahead, tt.preQueue)
			if ok != tt.ok || math.Abs(got-tt.want) > 0.05 {
				t.Errorf("eta = %v, %v; want %v, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestQueueCache(t *testing.T) {
	calls := 0
	c := &queueCache{ttl: time.Hour, base: t.Context(), measure: func(context.Context) (queueStats, error) {
		calls++
		return queueStats{Queued: int64(calls)}, nil
	}}
	for range 3 {
		if q, err := c.get(context.Background()); err != nil || q.Queued != 1 {
			t.Fatalf("get = %v, %v", q, err)
		}
	}
	if calls != 1 {
		t.Errorf("%d measurements, want 1", calls)
	}
}

func TestQueueCacheServesStaleWhileRefreshing(t *testing.T) {
	var mu sync.Mutex
	calls := 0
	release := make(chan struct{})
	c := &queueCache{ttl: 20 * time.Millisecond, base: t.Context(), measure: func(context.Context) (queueStats, error) {
		mu.Lock()
		calls++
		n := calls
		mu.Unlock()
		if n == 2 {
			<-release // the background refresh is slow
		}
		return queueStats{Queued: int64(n)}, nil
	}}
	ctx := context.Background()
	if q, _ := c.get(ctx); q.Queued != 1 {
		t.Fatalf("first = %d", q.Queued)
	}
	time.Sleep(30 * time.Millisecond)
	for range 5 { // expired: served stale at once, one refresh started
		if q, err := c.get(ctx); err != nil || q.Queued != 1 {
			t.Fatalf("stale get = %d, %v", q.Queued, err)
		}
	}
	close(release)
	deadline := time.Now().Add(5 * time.Second)
	for {
		if q, _ := c.get(ctx); q.Queued == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("refresh never landed")
		}
		time.Sleep(5 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if calls != 2 {
		t.Errorf("%d measurements, want 2", calls)
	}
}

func TestPlayForward(t *testing.T) {
	now := time.Now()
	ago := func(s float64) time.Time { return now.Add(-time.Duration(s * float64(time.Second))) }
	tests := []struct {
		name    string
		slots   int
		running []time.Time
		ahead   int64
		want    float64
	}{
		{"idle slots: starts now", 2, nil, 1, 0},
		{"idle slots, a queue", 2, nil, 2, 4},
		{"idle slots, a longer queue", 2, nil, 4, 8},
		{"running jobs free their slots in turn", 2, []time.Time{ago(1), ago(3)}, 0, 1},
		{"second slot", 2, []time.Time{ago(1), ago(3)}, 1, 3},
		{"first slot again", 2, []time.Time{ago(1), ago(3)}, 2, 5},
		{"late job frees now", 1, []time.Time{ago(10)}, 0, 0},
		{"more running than slots", 1, []time.Time{ago(1), ago(2)}, 0, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := queueStats{ExecutionSlots: tt.slots, runningStarted: tt.running}
			if got := q.playForward(tt.ahead, 4, now); math.Abs(got-tt.want) > 1e-9 {
				t.Fatalf("playForward(%d) = %g, want %g", tt.ahead, got, tt.want)
			}
		})
	}
}

// TestOpenAPIMatchesRouter keeps openapi.json honest: every route the
// router serves is documented with its method, and nothing more.
func TestOpenAPIMatchesRouter(t *testing.T) {
	srv := newServer(t.Context(), testConfig(), nil, nil, zap.NewNop())
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	rec := httptest.NewRecorder()
	srv.handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v1/openapi.json", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("openapi: %d", rec.Code)
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Errorf("openapi version %q", doc.OpenAPI)
	}
	documented := map[string]bool{}
	for path, ops := range doc.Paths {
		for method := range ops {
			if method == "parameters" || method == "summary" || method == "description" {
				continue
			}
			documented[strings.ToUpper(method)+" "+path] = true
		}
	}
	served := map[string]bool{}
	err := srv.router().Walk(func(route *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		tpl, err := route.GetPathTemplate()
		if err != nil {
			return err
		}
		methods, err := route.GetMethods()
		if err != nil {
			return err
		}
		for _, m := range methods {
			served[m+" "+tpl] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for k := range served {
		if !documented[k] {
			t.Errorf("served but not documented: %s", k)
		}
	}
	for k := range documented {
		if !served[k] {
			t.Errorf("documented but not served: %s", k)
		}
	}
	if len(served) != len(srv.routes()) {
		t.Errorf("router has %d routes, routes() %d", len(served), len(srv.routes()))
	}
	// Every route's documented security matches its access.
	for _, rt := range srv.routes() {
		var op struct {
			Security  []map[string][]string `json:"security"`
			Responses map[string]any        `json:"responses"`
		}
		if err := json.Unmarshal(doc.Paths[rt.path][strings.ToLower(rt.method)], &op); err != nil {
			t.Fatalf("%s %s: %v", rt.method, rt.path, err)
		}
		var schemes []string
		for _, s := range op.Security {
			for k := range s {
				schemes = append(schemes, k)
			}
		}
		slices.Sort(schemes)
		want := map[access][]string{accessOpen: nil, accessPortal: {"portalToken", "staffToken"}, accessStaff: {"staffToken"}}[rt.access]
		if !slices.Equal(schemes, want) {
			t.Errorf("%s %s: documented security %v, want %v", rt.method, rt.path, schemes, want)
		}
		if rt.access != accessOpen && op.Responses["401"] == nil {
			t.Errorf("%s %s: 401 not documented", rt.method, rt.path)
		}
	}
}

func TestLoadConfig(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		check   func(Config) bool
		wantErr bool
	}{
		{"defaults", nil, nil, func(c Config) bool {
			return c.Addr == "127.0.0.1:8080" && c.Mongo.DB == "gradeflow" && c.MaxUpload == 16<<20 &&
				c.RatePerMinute == 30 && c.RateBurst == 10 && c.RequestTimeout == 15*time.Second && c.DevTokens &&
				slices.Equal(c.PortalTokens, []string{"dev-portal"}) && slices.Equal(c.StaffTokens, []string{"dev-staff"}) &&
				c.QueueWindow == 10*time.Minute
		}, false},
		{"env", nil, map[string]string{
			"GRADEFLOW_API_ADDR": ":9000", "TEMPORAL_ADDRESS": "t:1", "TEMPORAL_NAMESPACE": "ns", "MONGODB_URI": "mongodb://m",
			"GRADEFLOW_DB": "db", "GRADEFLOW_PORTAL_TOKENS": "a, b,", "GRADEFLOW_STAFF_TOKENS": "c", "GRADEFLOW_MAX_UPLOAD": "1000",
			"GRADEFLOW_RATE_PER_MINUTE": "5", "GRADEFLOW_RATE_BURST": "2", "GRADEFLOW_WEBHOOK_SECRET": "s", "GRADEFLOW_REQUEST_TIMEOUT": "3s",
		}, func(c Config) bool {
			return c.Addr == ":9000" && c.Temporal.Address == "t:1" && c.Temporal.Namespace == "ns" && c.Mongo.URI == "mongodb://m" &&
				c.Mongo.DB == "db" && slices.Equal(c.PortalTokens, []string{"a", "b"}) && slices.Equal(c.StaffTokens, []string{"c"}) &&
				!c.DevTokens && c.MaxUpload == 1000 && c.RatePerMinute == 5 && c.RateBurst == 2 && c.WebhookSecret == "s" &&
				c.RequestTimeout == 3*time.Second
		}, false},
		{"flags win", []string{"-addr", ":1", "-rate-per-minute", "0"}, map[string]string{"GRADEFLOW_API_ADDR": ":2"},
			func(c Config) bool { return c.Addr == ":1" && c.RatePerMinute == 0 }, false},
		{"staff only leaves the portal without tokens", nil, map[string]string{"GRADEFLOW_STAFF_TOKENS": "c"},
			func(c Config) bool { return len(c.PortalTokens) == 0 && !c.DevTokens }, false},
		{"bad number", nil, map[string]string{"GRADEFLOW_MAX_UPLOAD": "lots"}, nil, true},
		{"bad duration", nil, map[string]string{"GRADEFLOW_REQUEST_TIMEOUT": "soon"}, nil, true},
		{"zero upload", nil, map[string]string{"GRADEFLOW_MAX_UPLOAD": "0"}, nil, true},
		{"rate without burst", nil, map[string]string{"GRADEFLOW_RATE_BURST": "0"}, nil, true},
		{"stray argument", []string{"extra"}, nil, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lookup := func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok }
			c, err := loadConfig(tt.args, lookup)
			if (err != nil) != tt.wantErr {
				t.Fatalf("error %v, want error %v", err, tt.wantErr)
			}
			if err == nil && !tt.check(c) {
				t.Errorf("config %+v", c)
			}
		})
	}
}

// TestQueueCacheRefreshEndsWithServer: a background refresh runs on the
// server's lifetime, not on context.Background: it sees the server stop,
// none starts after, and wait returns once it is done.
func TestQueueCacheRefreshEndsWithServer(t *testing.T) {
	base, stop := context.WithCancel(t.Context())
	started := make(chan struct{})
	var calls int
	var mu sync.Mutex
	c := &queueCache{ttl: time.Millisecond, base: base, measure: func(ctx context.Context) (queueStats, error) {
		mu.Lock()
		calls++
		n := calls
		mu.Unlock()
		if n == 2 { // the background refresh: it must end when the server does
			close(started)
			<-ctx.Done()
			return queueStats{}, ctx.Err()
		}
		return queueStats{Queued: 1}, nil
	}}
	if _, err := c.get(t.Context()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Millisecond)
	if q, err := c.get(t.Context()); err != nil || q.Queued != 1 {
		t.Fatalf("stale get = %+v, %v", q, err)
	}
	<-started
	stop()
	c.wait() // returns: the refresh saw the server stop
	time.Sleep(2 * time.Millisecond)
	if q, err := c.get(t.Context()); err != nil || q.Queued != 1 {
		t.Fatalf("get after stop = %+v, %v", q, err)
	}
	c.wait()
	mu.Lock()
	defer mu.Unlock()
	if calls != 2 {
		t.Errorf("%d measurements, want 2: no refresh starts once the server stopped", calls)
	}
}

// TestRouteTimeoutsBoundSlowUploads trickles a submission's body slower
// than its route allows: the server gives up at the route's timeout, not
// at the (much longer) assignment-upload timeout, so a slow client holds
// a connection only as long as its own route allows.
func TestRouteTimeoutsBoundSlowUploads(t *testing.T) {
	cfg := testConfig()
	cfg.RequestTimeout = 300 * time.Millisecond
	cfg.AssignmentTimeout = time.Minute
	st, err := store.Open("mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=200", "x") // never reached
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = st.Close(context.Background()) }()
	srv := httptest.NewUnstartedServer(newServer(t.Context(), cfg, st, nil, zap.NewNop()).handler())
	srv.Start()
	defer srv.Close()

	pr, pw := io.Pipe()
	go func() {
		_, _ = pw.Write([]byte("--b\r\nContent-Disposition: form-data; name=\"assignment\"\r\n\r\nwc\r\n"))
		for range 100 { // 10 s of a byte every 100 ms
			time.Sleep(100 * time.Millisecond)
			if _, err := pw.Write([]byte("x")); err != nil {
				return
			}
		}
		_ = pw.Close()
	}()
	defer func() { _ = pr.Close() }()
	req, err := http.NewRequest(http.MethodPost, srv.URL+"/v1/submissions", pr)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer portal-token")
	req.Header.Set("Content-Type", "multipart/form-data; boundary=b")
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	elapsed := time.Since(start)
	if err == nil {
		_ = resp.Body.Close()
	}
	// A 4xx/5xx answer or a closed connection both end it; what matters is when.
	if elapsed > 5*time.Second {
		t.Fatalf("a body trickled for %s before the server gave up; want about the 300 ms route timeout", elapsed)
	}
	if err == nil && resp.StatusCode < 400 {
		t.Fatalf("status %d for a body that never finished", resp.StatusCode)
	}
}
