package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/mux"
	"go.temporal.io/sdk/client"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/gradeflow/gradeflow/store"
)

// TestAuth checks every route with no token, a wrong token, and each role.
func TestAuth(t *testing.T) {
	e := newEnv(t, nil, nil)
	for _, rt := range e.srv.routes() {
		path := strings.NewReplacer("{id}", "x", "{name}", "x").Replace(rt.path)
		t.Run(rt.method+" "+rt.path, func(t *testing.T) {
			call := func(token string) response {
				return e.do(request{method: rt.method, path: path, token: token})
			}
			pass := func(r response) bool { return r.status != http.StatusUnauthorized && r.status != http.StatusForbidden }
			if rt.access == accessOpen {
				if r := call(""); !pass(r) {
					t.Errorf("open route refused without a token: %d %s", r.status, r.body)
				}
				return
			}
			for _, token := range []string{"", "wrong", "portal-token2"} {
				r := call(token)
				wantError(t, r, http.StatusUnauthorized, codeUnauthorized, "")
				if r.header.Get("WWW-Authenticate") == "" {
					t.Errorf("401 without WWW-Authenticate")
				}
			}
			r := e.do(request{method: rt.method, path: path, header: map[string]string{"Authorization": "Basic " + staffToken}})
			wantError(t, r, http.StatusUnauthorized, codeUnauthorized, "")
			if r := call(staffToken); !pass(r) {
				t.Errorf("staff refused: %d %s", r.status, r.body)
			}
			r = call(portalToken)
			switch rt.access {
			case accessPortal:
				if !pass(r) {
					t.Errorf("portal refused: %d %s", r.status, r.body)
				}
			case accessStaff:
				wantError(t, r, http.StatusForbidden, codeForbidden, "")
			}
		})
	}
}

func TestUnknownRoutes(t *testing.T) {
	e := newEnv(t, nil, nil)
	wantError(t, e.get(staffToken, "/v2/nothing"), http.StatusNotFound, codeNotFound, "")
	wantError(t, e.do(request{method: http.MethodDelete, path: "/v1/submissions/x", token: staffToken}),
		http.StatusMethodNotAllowed, codeMethodNotAllowed, "")
}

func TestHealth(t *testing.T) {
	e := newEnv(t, nil, nil)
	if r := e.get("", "/healthz"); r.status != http.StatusOK {
		t.Errorf("healthz: %d %s", r.status, r.body)
	}
	r := e.get("", "/readyz")
	if r.status != http.StatusOK {
		t.Fatalf("readyz: %d %s", r.status, r.body)
	}
	checks := r.json(t)["checks"].(map[string]any)
	if checks["temporal"] != "ok" || checks["mongodb"] != "ok" {
		t.Errorf("checks %v", checks)
	}

	// The same server with each dependency pointed at a closed port.
	deadPort, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	dead := "127.0.0.1:" + strconv.Itoa(deadPort)
	deadTemporal, err := client.NewLazyClient(client.Options{HostPort: dead, Namespace: "default"})
	if err != nil {
		t.Fatal(err)
	}
	defer deadTemporal.Close()
	deadMongo, err := store.Open("mongodb://"+dead+"/?serverSelectionTimeoutMS=500", "x")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = deadMongo.Close(context.Background()) }()
	tests := []struct {
		name    string
		st      *store.Store
		tc      client.Client
		failing string
		healthy string
	}{
		{"temporal down", e.store, deadTemporal, "temporal", "mongodb"},
		{"mongodb down", deadMongo, stack.temporal, "mongodb", "temporal"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e2 := &testEnv{t: t, srv: newServer(testConfig(), tt.st, tt.tc, zap.NewNop())}
			e2.http = httptest.NewServer(e2.srv.handler())
			defer e2.http.Close()
			if r := e2.get("", "/healthz"); r.status != http.StatusOK {
				t.Errorf("healthz: %d", r.status)
			}
			r := e2.get("", "/readyz")
			wantError(t, r, http.StatusServiceUnavailable, codeUnavailable, "")
			m := r.json(t)
			checks := m["checks"].(map[string]any)
			if checks[tt.healthy] != "ok" || checks[tt.failing] == "ok" || !strings.Contains(m["error"].(string), tt.failing) {
				t.Errorf("readyz %s", r.body)
			}
		})
	}
}

func TestMetrics(t *testing.T) {
	cfg := testConfig()
	cfg.RatePerMinute, cfg.RateBurst = 1, 1
	e := newEnv(t, &cfg, nil)
	e.seedAssignment("wc", "")
	e.post(portalToken, nil, submissionParts("wc", "m", "met-"+randHex(4))...)
	e.post(portalToken, nil, submissionParts("wc", "m", "met-"+randHex(4))...) // rate limited
	e.get(portalToken, "/v1/submissions/nope")
	r := e.get("", "/metrics")
	if r.status != http.StatusOK {
		t.Fatalf("metrics: %d", r.status)
	}
	for _, want := range []string{
		`gradeflow_api_requests_total{code="202",method="POST",route="/v1/submissions"} 1`,
		`gradeflow_api_requests_total{code="429",method="POST",route="/v1/submissions"} 1`,
		`gradeflow_api_requests_total{code="404",method="GET",route="/v1/submissions/{id}"} 1`,
		`gradeflow_api_request_duration_seconds_bucket{code="202",method="POST",route="/v1/submissions",le="+Inf"} 1`,
		`gradeflow_api_submissions_accepted_total 1`,
		`gradeflow_api_rate_limited_total 1`,
		`go_goroutines`,
	} {
		if !strings.Contains(string(r.body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestRequestLog(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	e := newEnv(t, nil, zap.New(core))
	r := e.do(request{method: http.MethodGet, path: "/v1/submissions/abc", token: portalToken,
		header: map[string]string{HeaderRequestID: "req-42"}})
	if got := r.header.Get(HeaderRequestID); got != "req-42" {
		t.Errorf("request id echoed as %q", got)
	}
	r = e.do(request{method: http.MethodGet, path: "/healthz", header: map[string]string{HeaderRequestID: "bad id with spaces"}})
	if got := r.header.Get(HeaderRequestID); got == "" || strings.Contains(got, " ") {
		t.Errorf("generated request id %q", got)
	}
	entries := logs.FilterMessage("request").AllUntimed()
	if len(entries) != 2 {
		t.Fatalf("%d log entries", len(entries))
	}
	f := entries[0].ContextMap()
	if f["request_id"] != "req-42" || f["route"] != "/v1/submissions/{id}" || f["status"] != int64(404) || f["method"] != "GET" {
		t.Errorf("log fields %v", f)
	}
	if _, ok := f["latency"]; !ok {
		t.Errorf("no latency in %v", f)
	}
}

// TestOpenAPIMatchesRouter keeps openapi.json honest: every route the
// router serves is documented with its method, and nothing more.
func TestOpenAPIMatchesRouter(t *testing.T) {
	e := newEnv(t, nil, nil)
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	r := e.get("", "/v1/openapi.json")
	if r.status != http.StatusOK {
		t.Fatalf("openapi: %d", r.status)
	}
	if err := json.Unmarshal(r.body, &doc); err != nil {
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
	err := e.srv.router().Walk(func(route *mux.Route, _ *mux.Router, _ []*mux.Route) error {
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
	if len(served) != len(e.srv.routes()) {
		t.Errorf("router has %d routes, routes() %d", len(served), len(e.srv.routes()))
	}
	// Every route's documented security matches its access.
	for _, rt := range e.srv.routes() {
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
			return c.Addr == "127.0.0.1:8080" && c.MongoDB == "gradeflow" && c.MaxUpload == 16<<20 &&
				c.RatePerMinute == 30 && c.RateBurst == 10 && c.RequestTimeout == 15*time.Second && c.DevTokens &&
				slices.Equal(c.PortalTokens, []string{"dev-portal"}) && slices.Equal(c.StaffTokens, []string{"dev-staff"}) &&
				c.QueueWindow == 10*time.Minute
		}, false},
		{"env", nil, map[string]string{
			"GRADEFLOW_API_ADDR": ":9000", "TEMPORAL_ADDRESS": "t:1", "TEMPORAL_NAMESPACE": "ns", "MONGODB_URI": "mongodb://m",
			"GRADEFLOW_DB": "db", "GRADEFLOW_PORTAL_TOKENS": "a, b,", "GRADEFLOW_STAFF_TOKENS": "c", "GRADEFLOW_MAX_UPLOAD": "1000",
			"GRADEFLOW_RATE_PER_MINUTE": "5", "GRADEFLOW_RATE_BURST": "2", "GRADEFLOW_WEBHOOK_SECRET": "s", "GRADEFLOW_REQUEST_TIMEOUT": "3s",
		}, func(c Config) bool {
			return c.Addr == ":9000" && c.TemporalAddress == "t:1" && c.TemporalNamespace == "ns" && c.MongoURI == "mongodb://m" &&
				c.MongoDB == "db" && slices.Equal(c.PortalTokens, []string{"a", "b"}) && slices.Equal(c.StaffTokens, []string{"c"}) &&
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
