//go:build stack

package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/gradeflow/gradeflow/webhook"
)

// receiver is a webhook endpoint that records deliveries and answers
// with the next of its status codes (the last one repeats).
type receiver struct {
	mu     sync.Mutex
	codes  []int
	got    []delivery
	server *httptest.Server
}

type delivery struct {
	header http.Header
	body   []byte
}

func newReceiver(t *testing.T, codes ...int) *receiver {
	rc := &receiver{codes: codes}
	rc.server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		defer rc.mu.Unlock()
		rc.got = append(rc.got, delivery{header: r.Header.Clone(), body: body})
		code := rc.codes[min(len(rc.got), len(rc.codes))-1]
		w.WriteHeader(code)
	}))
	t.Cleanup(rc.server.Close)
	return rc
}

func (rc *receiver) deliveries() []delivery {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]delivery(nil), rc.got...)
}

// signature computes the expected header independently of the code under test.
func signature(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

func TestWebhookTestEndpoint(t *testing.T) {
	e := newEnv(t, nil, nil) // secret "test-secret"
	rc := newReceiver(t, http.StatusOK)
	e.seedAssignment("wc", rc.server.URL)
	r := e.do(request{method: http.MethodPost, path: "/v1/assignments/wc/webhook-test", token: staffToken})
	if r.status != http.StatusOK || r.json(t)["delivered"] != true {
		t.Fatalf("ping: %d %s", r.status, r.body)
	}
	d := rc.deliveries()[0]
	if d.header.Get(webhook.HeaderSignature) != signature("test-secret", d.body) || d.header.Get(webhook.HeaderEvent) != webhook.EventPing {
		t.Errorf("ping headers %v body %s", d.header, d.body)
	}

	down := newReceiver(t, http.StatusInternalServerError)
	e.seedAssignment("wc", down.server.URL)
	wantError(t, e.do(request{method: http.MethodPost, path: "/v1/assignments/wc/webhook-test", token: staffToken}),
		http.StatusBadGateway, codeWebhookFailed, "")
	e.seedAssignment("wc", "")
	wantError(t, e.do(request{method: http.MethodPost, path: "/v1/assignments/wc/webhook-test", token: staffToken}),
		http.StatusConflict, codeConflict, "")
}

// TestWebhookTestIsNoScanner: webhook-test answers delivered or not and
// nothing else, so a receiver that fails and a port that is closed look
// the same; and without the operator's permission a loopback receiver
// (stored by hand, past the upload check) is never connected to.
func TestWebhookTestIsNoScanner(t *testing.T) {
	e := newEnv(t, nil, nil)
	ping := func() response {
		return e.do(request{method: http.MethodPost, path: "/v1/assignments/wc/webhook-test", token: staffToken})
	}
	failing := newReceiver(t, http.StatusTeapot)
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()

	e.seedAssignment("wc", failing.server.URL)
	a := ping()
	e.seedAssignment("wc", closedURL)
	b := ping()
	if a.status != http.StatusBadGateway || b.status != a.status || string(a.body) != string(b.body) {
		t.Fatalf("failing receiver %d %s, closed port %d %s: want the same 502", a.status, a.body, b.status, b.body)
	}

	cfg := testConfig()
	cfg.WebhookPrivate = false
	strict := newEnv(t, &cfg, nil)
	rc := newReceiver(t, http.StatusOK)
	strict.seedAssignment("wh", rc.server.URL)
	r := strict.do(request{method: http.MethodPost, path: "/v1/assignments/wh/webhook-test", token: staffToken})
	wantError(t, r, http.StatusBadGateway, codeWebhookFailed, "")
	if n := len(rc.deliveries()); n != 0 {
		t.Fatalf("the loopback receiver got %d deliveries; want none", n)
	}
}
