//go:build stack

package main

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

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
	e.seedAssignment("wc", "")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e2 := &testEnv{t: t, srv: newServer(t.Context(), testConfig(), tt.st, tt.tc, zap.NewNop())}
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

			// A submission is refused with "retry later", and nothing of it stays.
			id := "down-" + randHex(4)
			start := time.Now()
			r = e2.post(portalToken, nil, submissionParts("wc", "dana", id)...)
			wantError(t, r, http.StatusServiceUnavailable, codeUnavailable, "")
			t.Logf("POST answered 503 after %s", time.Since(start))
			if ra := r.header.Get("Retry-After"); ra == "" {
				t.Errorf("503 without Retry-After: %v", r.header)
			}
			if _, err := e.store.Submission(context.Background(), id); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("refused submission %s was stored: %v", id, err)
			}
			if tt.failing == "mongodb" {
				r = e2.get(portalToken, "/v1/submissions/"+id)
				wantError(t, r, http.StatusServiceUnavailable, codeUnavailable, "")
				if r.header.Get("Retry-After") == "" {
					t.Errorf("503 without Retry-After: %v", r.header)
				}
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
