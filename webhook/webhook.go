// Package webhook delivers signed JSON notifications to an assignment's
// receiver: the HMAC-SHA256 signature, the headers, the payload and one
// delivery attempt classified as retryable or final. The worker's Webhook
// activity and the API's test delivery both use it.
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/gradeflow/gradeflow/contract"
	"github.com/gradeflow/gradeflow/store"
)

// Headers of a delivery. The signature is "sha256=" and the hex HMAC-SHA256
// of the request body, keyed with the shared webhook secret. Deliveries are
// at least once: receivers deduplicate by the delivery ID.
const (
	HeaderSignature = "X-Gradeflow-Signature"
	HeaderEvent     = "X-Gradeflow-Event"
	HeaderDelivery  = "X-Gradeflow-Delivery"
)

// Events.
const (
	EventCompleted = "submission.completed" // a submission reached stage done
	EventPing      = "ping"                 // a test delivery sent by staff
)

// Payload is the JSON body of a delivery.
type Payload struct {
	Event      string            `json:"event"`
	Submission *store.Submission `json:"submission,omitempty"`
	Assignment string            `json:"assignment,omitempty"`
	SentAt     time.Time         `json:"sent_at"`
}

// Post makes one delivery of body to url with client c (which signs it, see
// NewClient) and returns the receiver's status code. A 2xx answer is
// success; a final refusal is a non-retryable contract.WebhookRejected
// error; anything else (network errors, 5xx, 408, 425, 429) is retryable.
func Post(ctx context.Context, c *http.Client, url, event, delivery string, body []byte) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, temporal.NewNonRetryableApplicationError(fmt.Sprintf("webhook request: %v", err), contract.WebhookRejected, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "gradeflow-webhook/1")
	req.Header.Set(HeaderEvent, event)
	req.Header.Set(HeaderDelivery, delivery)
	resp, err := c.Do(req)
	if errors.Is(err, ErrBlockedAddress) {
		return 0, temporal.NewNonRetryableApplicationError("post webhook: the receiver's address is not allowed", contract.WebhookRejected, err)
	}
	if err != nil {
		return 0, fmt.Errorf("post webhook: %w", err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	switch code := resp.StatusCode; {
	case code >= 200 && code < 300:
		return code, nil
	case code == http.StatusRequestTimeout || code == http.StatusTooEarly || code == http.StatusTooManyRequests || code >= 500:
		return code, fmt.Errorf("post webhook: receiver answered %s", resp.Status)
	default:
		return code, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("post webhook: receiver answered %s", resp.Status), contract.WebhookRejected, nil)
	}
}

// NewClient returns an HTTP client that signs every request body with
// secret, in the X-Gradeflow-Signature header, and gives each attempt
// timeout. It never follows a redirect (a 3xx is a final refusal) and,
// unless allowPrivate, refuses to connect to any address that is not
// public (see ErrBlockedAddress).
func NewClient(secret string, timeout time.Duration, allowPrivate bool) *http.Client {
	return &http.Client{
		Timeout:   timeout,
		Transport: &SigningTransport{Secret: []byte(secret), Base: transport(allowPrivate)},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// SigningTransport adds the X-Gradeflow-Signature header to each request
// and passes it on to Base.
type SigningTransport struct {
	Secret []byte
	Base   http.RoundTripper
}

// RoundTrip signs req's body and sends it.
func (t *SigningTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	body, err := replayBody(req)
	if err != nil {
		if req.Body != nil {
			_ = req.Body.Close() // a RoundTripper closes the body, even on error
		}
		return nil, fmt.Errorf("sign webhook: %w", err)
	}
	signed := req.Clone(req.Context())
	signed.Header.Set(HeaderSignature, Sign(t.Secret, body))
	return t.Base.RoundTrip(signed)
}

// replayBody reads a copy of req's body, leaving req.Body unread.
func replayBody(req *http.Request) ([]byte, error) {
	if req.Body == nil || req.Body == http.NoBody {
		return nil, nil
	}
	if req.GetBody == nil {
		return nil, errors.New("request body cannot be replayed")
	}
	rc, err := req.GetBody()
	if err != nil {
		return nil, fmt.Errorf("replay body: %w", err)
	}
	defer func() { _ = rc.Close() }()
	return io.ReadAll(rc)
}

// Sign returns the signature header value of body: "sha256=" and the hex
// HMAC-SHA256 of body keyed with secret.
func Sign(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Verify reports whether header is body's valid signature, in constant
// time. Receivers written in Go can use it.
func Verify(secret, body []byte, header string) bool {
	return hmac.Equal([]byte(header), []byte(Sign(secret, body)))
}
