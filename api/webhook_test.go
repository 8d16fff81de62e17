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
