package webhook

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/gradeflow/gradeflow/contract"
)

func TestPublicAddress(t *testing.T) {
	tests := []struct {
		ip   string
		want bool
	}{
		{"93.184.216.34", true},
		{"2606:4700::1111", true},
		{"127.0.0.1", false},
		{"127.8.9.10", false},
		{"::1", false},
		{"10.1.2.3", false},
		{"172.16.0.1", false},
		{"192.168.1.1", false},
		{"169.254.169.254", false}, // cloud metadata
		{"100.64.0.1", false},      // CGNAT
		{"0.0.0.0", false},
		{"::", false},
		{"fd00::1", false},
		{"fe80::1", false},
		{"::ffff:127.0.0.1", false}, // v4-mapped loopback
		{"::ffff:10.0.0.1", false},
		{"224.0.0.1", false},
		{"255.255.255.255", false},
		{"198.18.0.1", false},
	}
	for _, tc := range tests {
		t.Run(tc.ip, func(t *testing.T) {
			if got := PublicAddress(netip.MustParseAddr(tc.ip)); got != tc.want {
				t.Fatalf("PublicAddress(%s) = %v, want %v", tc.ip, got, tc.want)
			}
		})
	}
}

func TestCheckURL(t *testing.T) {
	tests := []struct {
		url          string
		allowPrivate bool
		wantErr      string
	}{
		{"https://hooks.example.edu/grade", false, ""},
		{"http://93.184.216.34:8080/x", false, ""},
		{"ftp://hooks.example.edu/x", false, "http or https"},
		{"/relative", false, "http or https"},
		{"https://user:pw@hooks.example.edu/x", false, "credentials"},
		{"http://127.0.0.1:7233/", false, "not allowed"},
		{"http://[::1]/", false, "not allowed"},
		{"http://localhost:8080/", false, "not allowed"},
		{"http://api.localhost/", false, "not allowed"},
		{"http://mongo:27017/", false, "not allowed"}, // a bare service name
		{"http://metadata.google.internal/", false, "not allowed"},
		{"http://169.254.169.254/latest/meta-data", false, "not allowed"},
		{"http://127.0.0.1:7233/", true, ""},
		{"http://mongo:27017/", true, ""},
	}
	for _, tc := range tests {
		t.Run(tc.url, func(t *testing.T) {
			err := CheckURL(tc.url, tc.allowPrivate)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("CheckURL(%q) = %v", tc.url, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("CheckURL(%q) = %v, want an error mentioning %q", tc.url, err, tc.wantErr)
			}
		})
	}
}

// finalRejection asserts err is a non-retryable WebhookRejected failure.
func finalRejection(t *testing.T, err error) {
	t.Helper()
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || appErr.Type() != contract.WebhookRejected || !appErr.NonRetryable() {
		t.Fatalf("error %v, want a final %s", err, contract.WebhookRejected)
	}
}

// TestPostRefusesPrivateReceivers: a receiver on loopback (what a name
// that rebinds to 127.0.0.1 reaches too) gets no connection unless the
// operator allows private addresses, and the refusal is final.
func TestPostRefusesPrivateReceivers(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	_, err := Post(ctx, NewClient("s", 5*time.Second, false), srv.URL, EventPing, "d1", []byte(`{}`))
	finalRejection(t, err)
	if !errors.Is(err, ErrBlockedAddress) || hits.Load() != 0 {
		t.Fatalf("error %v, %d requests reached the receiver; want ErrBlockedAddress and none", err, hits.Load())
	}

	code, err := Post(ctx, NewClient("s", 5*time.Second, true), srv.URL, EventPing, "d2", []byte(`{}`))
	if err != nil || code != http.StatusOK || hits.Load() != 1 {
		t.Fatalf("allowed: code %d, err %v, hits %d", code, err, hits.Load())
	}
}

// TestPostDoesNotFollowRedirects: a receiver that redirects elsewhere is a
// final refusal, and the redirect target sees nothing.
func TestPostDoesNotFollowRedirects(t *testing.T) {
	var targetHits atomic.Int32
	target := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { targetHits.Add(1) }))
	defer target.Close()
	redirector := httptest.NewServer(http.RedirectHandler(target.URL+"/internal", http.StatusTemporaryRedirect))
	defer redirector.Close()

	code, err := Post(context.Background(), NewClient("s", 5*time.Second, true), redirector.URL, EventPing, "d", []byte(`{}`))
	finalRejection(t, err)
	if code != http.StatusTemporaryRedirect || targetHits.Load() != 0 {
		t.Fatalf("code %d, target hit %d times; want 307 and no hit", code, targetHits.Load())
	}
}
