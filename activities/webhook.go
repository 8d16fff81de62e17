package activities

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/gradeflow/gradeflow/store"
)

// Webhook headers. The signature is "sha256=" and the hex HMAC-SHA256 of
// the request body, keyed with the shared webhook secret. Deliveries are at
// least once: receivers deduplicate by the delivery ID.
const (
	HeaderSignature = "X-Gradeflow-Signature"
	HeaderEvent     = "X-Gradeflow-Event"
	HeaderDelivery  = "X-Gradeflow-Delivery"
)

// Webhook events.
const (
	EventCompleted = "submission.completed" // a submission reached stage done
	EventPing      = "ping"                 // a test delivery sent by staff
)

// WebhookRejected is the error type of a delivery the receiver refused for
// good (a 4xx other than 408, 425 or 429): retrying will not help.
const WebhookRejected = "WebhookRejected"

// WebhookRequest names a finished submission whose result to deliver to
// its assignment's webhook URL.
type WebhookRequest struct {
	SubmissionID string
	Assignment   string
}

// WebhookPayload is the JSON body of a webhook delivery.
type WebhookPayload struct {
	Event      string            `json:"event"`
	Submission *store.Submission `json:"submission,omitempty"`
	Assignment string            `json:"assignment,omitempty"`
	SentAt     time.Time         `json:"sent_at"`
}

// Webhook POSTs a finished submission's result (the read-model document,
// as GET /v1/submissions/{id} shows it) to its assignment's webhook URL,
// if it has one. It makes one attempt: Temporal retries it with backoff.
// Run it after the record step, so that the grade never waits for it.
func (a *Activities) Webhook(ctx context.Context, req WebhookRequest) error {
	asg, err := a.Store.Assignment(ctx, req.Assignment)
	if errors.Is(err, store.ErrNotFound) {
		return nil // deleted since: nobody to tell
	}
	if err != nil {
		return err
	}
	if asg.WebhookURL == "" {
		return nil
	}
	if a.HTTP == nil {
		return configFailure("webhook for %s: no webhook client configured on the worker", req.Assignment)
	}
	sub, err := a.Store.Submission(ctx, req.SubmissionID)
	if err != nil {
		return err
	}
	body, err := json.Marshal(WebhookPayload{Event: EventCompleted, Submission: &sub, SentAt: sub.UpdatedAt})
	if err != nil {
		return fmt.Errorf("encode webhook: %w", err)
	}
	_, err = PostWebhook(ctx, a.HTTP, asg.WebhookURL, EventCompleted, req.SubmissionID, body)
	return err
}

// PostWebhook makes one delivery of body to url with client c (which signs
// it, see NewWebhookClient) and returns the receiver's status code. A 2xx
// answer is success; a final refusal is a non-retryable WebhookRejected
// error; anything else (network errors, 5xx, 408, 425, 429) is retryable.
func PostWebhook(ctx context.Context, c *http.Client, url, event, delivery string, body []byte) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, temporal.NewNonRetryableApplicationError(fmt.Sprintf("webhook request: %v", err), WebhookRejected, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "gradeflow-webhook/1")
	req.Header.Set(HeaderEvent, event)
	req.Header.Set(HeaderDelivery, delivery)
	resp, err := c.Do(req)
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
			fmt.Sprintf("post webhook: receiver answered %s", resp.Status), WebhookRejected, nil)
	}
}

// NewWebhookClient returns an HTTP client that signs every request body
// with secret, in the X-Gradeflow-Signature header, and gives each attempt
// timeout.
func NewWebhookClient(secret string, timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout:   timeout,
		Transport: &SigningTransport{Secret: []byte(secret), Base: http.DefaultTransport},
	}
}

// SigningTransport adds the X-Gradeflow-Signature header to each request,
// redirects included, and passes it on to Base.
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
		return nil, err
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

// VerifySignature reports whether header is body's valid signature, in
// constant time. Receivers written in Go can use it.
func VerifySignature(secret, body []byte, header string) bool {
	return hmac.Equal([]byte(header), []byte(Sign(secret, body)))
}
