package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"go.temporal.io/api/serviceerror"

	"github.com/gradeflow/gradeflow/intake"
	"github.com/gradeflow/gradeflow/store"
)

// Error codes, stable API: clients switch on them.
const (
	codeUnauthorized     = "unauthorized"
	codeForbidden        = "forbidden"
	codeNotFound         = "not_found"
	codeUnknownAssign    = "unknown_assignment"
	codeMethodNotAllowed = "method_not_allowed"
	codeMissingField     = "missing_field"
	codeInvalidField     = "invalid_field"
	codeMalformed        = "malformed_request"
	codeUnsafePath       = "unsafe_path"
	codeTooLarge         = "too_large"
	codeConflict         = "conflict"
	codeInProgress       = "in_progress"
	codeAlreadyDone      = "already_done"
	codeNotQuarantined   = "not_quarantined"
	codeRateLimited      = "rate_limited"
	codeUnavailable      = "unavailable"
	codeTimeout          = "timeout"
	codeInternal         = "internal"
	codeWebhookFailed    = "webhook_failed"
)

// fieldCodes maps the intake's field problems to error codes.
var fieldCodes = map[intake.Problem]string{
	intake.Missing:   codeMissingField,
	intake.Invalid:   codeInvalidField,
	intake.Unsafe:    codeUnsafePath,
	intake.Malformed: codeMalformed,
}

// apiError is an error with the HTTP answer it deserves.
type apiError struct {
	Status int    `json:"-"`
	Msg    string `json:"error"`
	Code   string `json:"code"`
	Field  string `json:"field,omitempty"`
	// retryAfter, in seconds, is sent as Retry-After when positive.
	retryAfter int
}

func (e *apiError) Error() string { return e.Msg }

// errorf returns an apiError with a formatted message.
func errorf(status int, code, format string, args ...any) *apiError {
	return &apiError{Status: status, Code: code, Msg: fmt.Sprintf(format, args...)}
}

// missingField reports a required field that is absent.
func missingField(field string) *apiError {
	return &apiError{Status: http.StatusBadRequest, Code: codeMissingField, Field: field, Msg: "missing field: " + field}
}

// invalidField reports a field whose value is wrong.
func invalidField(field, format string, args ...any) *apiError {
	return &apiError{Status: http.StatusBadRequest, Code: codeInvalidField, Field: field,
		Msg: fmt.Sprintf("invalid field %s: %s", field, fmt.Sprintf(format, args...))}
}

// asAPIError turns any error into the answer it deserves. Errors that are
// not the client's are 5xx and keep their detail out of the answer.
func asAPIError(err error) *apiError {
	var ae *apiError
	var mbe *http.MaxBytesError
	var nf *serviceerror.NotFound
	var unavail *serviceerror.Unavailable
	var fe *intake.FieldError
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.As(err, &fe):
		return &apiError{Status: http.StatusBadRequest, Code: fieldCodes[fe.Problem], Field: fe.Field, Msg: fe.Msg}
	case errors.Is(err, intake.ErrUnknownAssignment):
		return &apiError{Status: http.StatusNotFound, Code: codeUnknownAssign, Field: "assignment", Msg: err.Error()}
	case errors.Is(err, intake.ErrBusy):
		return &apiError{Status: http.StatusConflict, Code: codeInProgress, Field: "id", Msg: err.Error(), retryAfter: 2}
	case errors.Is(err, intake.ErrConflict):
		return &apiError{Status: http.StatusConflict, Code: codeConflict, Field: "id", Msg: err.Error()}
	case errors.As(err, &mbe):
		return errorf(http.StatusRequestEntityTooLarge, codeTooLarge, "request body exceeds %d bytes", mbe.Limit)
	case errors.Is(err, store.ErrTooLarge):
		return errorf(http.StatusRequestEntityTooLarge, codeTooLarge, "%v", err)
	case errors.Is(err, store.ErrNotFound), errors.As(err, &nf):
		return errorf(http.StatusNotFound, codeNotFound, "%v", err)
	case store.Unavailable(err), errors.As(err, &unavail):
		return unavailable()
	case errors.Is(err, context.DeadlineExceeded):
		return errorf(http.StatusGatewayTimeout, codeTimeout, "the request timed out")
	default:
		return errorf(http.StatusInternalServerError, codeInternal, "internal error")
	}
}

// unavailable is the answer while MongoDB or Temporal cannot be reached.
func unavailable() *apiError {
	ae := errorf(http.StatusServiceUnavailable, codeUnavailable, "a backing service is unavailable; retry later")
	ae.retryAfter = 5
	return ae
}

// fail answers with err. Server-side errors are attached to the request so
// that the access log line reports them: they are logged once, there.
func (s *server) fail(w http.ResponseWriter, r *http.Request, err error) {
	ae := asAPIError(err)
	if ae.Status >= 500 {
		requestInfoOf(r.Context()).err = err
	}
	if ae.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(ae.retryAfter))
	}
	writeJSON(w, ae.Status, ae)
}

// writeJSON answers with v as JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	_ = enc.Encode(v) // the client went away; nothing to do
}
