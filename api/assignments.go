package main

import (
	"encoding/json"
	"net/http"

	"github.com/gorilla/mux"
	"go.uber.org/zap"

	"github.com/gradeflow/gradeflow/contract"
	"github.com/gradeflow/gradeflow/intake"
	"github.com/gradeflow/gradeflow/webhook"
)

// putAssignment creates or replaces an assignment from a multipart upload:
// a config part and, in the single-test form, input and expected files,
// or, in the tests form, the files of the assignment's directory that its
// tests name (each part named by its relative path). Larger inputs go in
// as datasets. Everything is checked before anything is written.
func (s *server) putAssignment(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	name := mux.Vars(r)["name"]
	if !contract.ValidName(name) {
		s.fail(w, r, invalidField("name", "must be 1-64 characters of a-z, 0-9, '-' or '_'"))
		return
	}
	f, err := readForm(w, r, formSpec{
		fields:   []string{"config"},
		files:    []string{"input", "expected", "files"},
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
	a, err := intake.DecodeAssignment([]byte(raw), name)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	stored, created, err := s.intake.PutAssignment(ctx, intake.AssignmentUpload{
		Config: a, Input: f.files["input"], Expected: f.files["expected"], Files: f.files["files"],
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if stored.WebhookURL != "" && s.cfg.WebhookSecret == "" {
		s.log.Warn("assignment has a webhook but the API has no GRADEFLOW_WEBHOOK_SECRET", zap.String("assignment", name))
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	writeJSON(w, status, stored)
}

// assignmentList is the answer of GET /v1/assignments.
type assignmentList struct {
	Assignments []contract.Assignment `json:"assignments"`
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
	body, err := json.Marshal(webhook.Payload{Event: webhook.EventPing, Assignment: a.Name, SentAt: s.now().UTC()})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	// The answer says delivered or not, nothing more: the receiver's status,
	// the error and the timing of a refused connection would make this a
	// scanner of whatever the API can reach. The access log has the error.
	if _, err := webhook.Post(ctx, s.webhooks, a.WebhookURL, webhook.EventPing, "ping-"+requestInfoOf(ctx).id, body); err != nil {
		requestInfoOf(ctx).err = err
		writeJSON(w, http.StatusBadGateway, map[string]any{
			"error": "the webhook was not delivered", "code": codeWebhookFailed, "delivered": false,
		})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"delivered": true})
}
