package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/mux"
	"go.uber.org/zap"

	"github.com/gradeflow/gradeflow/activities"
	"github.com/gradeflow/gradeflow/store"
)

// assignmentConfig is the JSON of an assignment upload's config part:
// store.Assignment without the fields the API fills in.
type assignmentConfig struct {
	Title            string   `json:"title"`
	Runtimes         []string `json:"runtimes"`
	TimeLimitSeconds int      `json:"time_limit_seconds"`
	MemoryMB         int      `json:"memory_mb"`
	CPUs             float64  `json:"cpus"`
	ForbiddenModules []string `json:"forbidden_modules"`
	Compare          string   `json:"compare"`
	Points           float64  `json:"points"`
	Mapper           string   `json:"mapper"`
	Reducer          string   `json:"reducer"`
	Combiner         string   `json:"combiner"`
	MainClass        string   `json:"main_class"`
	WebhookURL       string   `json:"webhook_url"`
}

// parseAssignmentConfig decodes the config part strictly, naming the
// field at fault.
func parseAssignmentConfig(name string, raw []byte) (store.Assignment, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var c assignmentConfig
	if err := dec.Decode(&c); err != nil {
		return store.Assignment{}, configError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return store.Assignment{}, invalidField("config", "trailing data after the JSON object")
	}
	a := store.Assignment{
		Name: name, Title: c.Title, Runtimes: c.Runtimes, TimeLimitSeconds: c.TimeLimitSeconds,
		MemoryMB: c.MemoryMB, CPUs: c.CPUs, ForbiddenModules: c.ForbiddenModules, Compare: c.Compare,
		Points: c.Points, Mapper: c.Mapper, Reducer: c.Reducer, Combiner: c.Combiner,
		MainClass: c.MainClass, WebhookURL: c.WebhookURL,
	}
	a.Defaults()
	if err := a.Validate(); err != nil {
		field, msg, _ := strings.Cut(err.Error(), ": ")
		return store.Assignment{}, &apiError{Status: http.StatusBadRequest, Code: codeInvalidField, Field: field,
			Msg: fmt.Sprintf("invalid field %s: %s", field, msg)}
	}
	if a.WebhookURL != "" {
		u, err := url.Parse(a.WebhookURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return store.Assignment{}, invalidField("webhook_url", "must be an absolute http or https URL")
		}
	}
	return a, nil
}

// configError names the field of a JSON decoding error.
func configError(err error) error {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr):
		return invalidField(typeErr.Field, "must be a JSON %s", typeErr.Type.Kind())
	case errors.As(err, &syntaxErr), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return &apiError{Status: http.StatusBadRequest, Code: codeMalformed, Field: "config",
			Msg: fmt.Sprintf("config is not valid JSON: %v", err)}
	}
	if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		field := strings.Trim(f, `"`)
		return &apiError{Status: http.StatusBadRequest, Code: codeInvalidField, Field: field,
			Msg: fmt.Sprintf("unknown field: %s (name and files come from the URL and the parts)", field)}
	}
	return invalidField("config", "%v", err)
}

// putAssignment creates or replaces an assignment from a multipart upload:
// a config part and one or more input and expected files. Everything is
// checked before anything is written.
func (s *server) putAssignment(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	name := mux.Vars(r)["name"]
	probe := store.Assignment{Name: name}
	probe.Defaults()
	if err := probe.Validate(); err != nil {
		s.fail(w, r, invalidField("name", "must be 1-64 characters of a-z, 0-9, '-' or '_'"))
		return
	}
	f, err := readForm(w, r, formSpec{
		fields:   []string{"config"},
		files:    []string{"input", "expected"},
		maxBytes: s.cfg.MaxAssignment,
		maxField: map[string]int64{"config": 64 << 10},
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	raw, ok := f.fields["config"]
	if !ok {
		s.fail(w, r, missingField("config"))
		return
	}
	a, err := parseAssignmentConfig(name, []byte(raw))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	for _, part := range []string{"input", "expected"} {
		if len(f.files[part]) == 0 {
			s.fail(w, r, missingField(part))
			return
		}
	}
	_, err = s.store.Assignment(ctx, name)
	isNew := errors.Is(err, store.ErrNotFound)
	if err != nil && !isNew {
		s.fail(w, r, err)
		return
	}
	if err := s.writeAssignment(ctx, a, f, isNew); err != nil {
		s.fail(w, r, err)
		return
	}
	stored, err := s.store.Assignment(ctx, name)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if stored.WebhookURL != "" && s.cfg.WebhookSecret == "" {
		s.log.Warn("assignment has a webhook but the API has no GRADEFLOW_WEBHOOK_SECRET", zap.String("assignment", name))
	}
	s.known.add(name, time.Now())
	status := http.StatusOK
	if isNew {
		status = http.StatusCreated
	}
	writeJSON(w, status, stored)
}

// writeAssignment stores an assignment's files, removes files of an
// earlier version that the new one lacks, then the configuration. If a
// new assignment fails halfway, its files are removed again.
func (s *server) writeAssignment(ctx context.Context, a store.Assignment, f *form, isNew bool) (err error) {
	if isNew {
		defer func() {
			if err != nil {
				uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
				defer cancel()
				_ = s.store.DeletePrefix(uctx, store.InputPrefix(a.Name))
				_ = s.store.DeletePrefix(uctx, store.ExpectedPrefix(a.Name))
			}
		}()
	}
	for part, prefix := range map[string]string{"input": store.InputPrefix(a.Name), "expected": store.ExpectedPrefix(a.Name)} {
		files := f.files[part]
		for rel, data := range files {
			if err := s.store.PutFile(ctx, prefix+rel, data); err != nil {
				return err
			}
		}
		old, err := s.store.ListFiles(ctx, prefix)
		if err != nil {
			return err
		}
		for _, name := range old {
			if _, keep := files[strings.TrimPrefix(name, prefix)]; !keep {
				if err := s.store.DeleteFile(ctx, name); err != nil {
					return err
				}
			}
		}
	}
	return s.store.PutAssignment(ctx, a)
}

// assignmentList is the answer of GET /v1/assignments.
type assignmentList struct {
	Assignments []store.Assignment `json:"assignments"`
}

// listAssignments answers every assignment.
func (s *server) listAssignments(w http.ResponseWriter, r *http.Request) {
	as, err := s.store.Assignments(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, assignmentList{Assignments: as})
}

// getAssignment answers one assignment.
func (s *server) getAssignment(w http.ResponseWriter, r *http.Request) {
	a, err := s.store.Assignment(r.Context(), mux.Vars(r)["name"])
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, a)
}

// testWebhook sends a signed ping to an assignment's webhook URL, so staff
// can check their receiver before a real result is delivered.
func (s *server) testWebhook(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	a, err := s.store.Assignment(ctx, mux.Vars(r)["name"])
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if a.WebhookURL == "" {
		s.fail(w, r, errorf(http.StatusConflict, codeConflict, "assignment %s has no webhook_url", a.Name))
		return
	}
	body, err := json.Marshal(activities.WebhookPayload{Event: activities.EventPing, Assignment: a.Name, SentAt: s.now().UTC()})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	code, err := activities.PostWebhook(ctx, s.webhooks, a.WebhookURL, activities.EventPing, "ping-"+requestInfoOf(ctx).id, body)
	if err != nil {
		writeJSON(w, http.StatusBadGateway, map[string]any{
			"error": fmt.Sprintf("webhook delivery failed: %v", err), "code": codeWebhookFailed, "status": code,
		})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"delivered": true, "status": code})
}

// knownTTL is how long a replica trusts that an assignment it saw exists.
// The API deletes no assignment; this bounds the staleness should staff
// remove one from the database by hand.
const knownTTL = time.Minute

// knownAssignments remembers assignment names seen to exist, sparing each
// submission a lookup.
type knownAssignments struct {
	mu    sync.Mutex
	until map[string]time.Time
}

func (k *knownAssignments) has(name string, now time.Time) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return now.Before(k.until[name])
}

func (k *knownAssignments) add(name string, now time.Time) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.until == nil {
		k.until = map[string]time.Time{}
	}
	k.until[name] = now.Add(knownTTL)
}

// assignmentExists fails with 404 unknown_assignment unless the assignment
// exists.
func (s *server) assignmentExists(ctx context.Context, name string) error {
	now := time.Now()
	if s.known.has(name, now) {
		return nil
	}
	if _, err := s.store.Assignment(ctx, name); errors.Is(err, store.ErrNotFound) {
		return &apiError{Status: http.StatusNotFound, Code: codeUnknownAssign, Field: "assignment",
			Msg: fmt.Sprintf("unknown assignment %q", name)}
	} else if err != nil {
		return err
	}
	s.known.add(name, now)
	return nil
}
