package intake

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/gradeflow/gradeflow/contract"
	"github.com/gradeflow/gradeflow/store"
	"github.com/gradeflow/gradeflow/webhook"
)

// assignmentConfig is an assignment's configuration as staff write it:
// contract.Assignment without the fields the service fills in.
type assignmentConfig struct {
	Name             string   `json:"name"`
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
	ShowExpected     bool     `json:"show_expected"`
}

// DecodeAssignment decodes an assignment's JSON configuration strictly,
// naming the field at fault. With name set (the API, whose URL names the
// assignment) the JSON must not name it; with name empty (an
// assignment.json file) it must.
func DecodeAssignment(raw []byte, name string) (contract.Assignment, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var c assignmentConfig
	if err := dec.Decode(&c); err != nil {
		return contract.Assignment{}, configError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return contract.Assignment{}, invalid("config", "trailing data after the JSON object")
	}
	switch {
	case name != "" && c.Name != "":
		return contract.Assignment{}, invalid("name", "comes from the URL, not the config")
	case name == "" && c.Name == "":
		return contract.Assignment{}, missing("name")
	case name == "":
		name = c.Name
	}
	return contract.Assignment{
		Name: name, Title: c.Title, Runtimes: c.Runtimes, TimeLimitSeconds: c.TimeLimitSeconds,
		MemoryMB: c.MemoryMB, CPUs: c.CPUs, ForbiddenModules: c.ForbiddenModules, Compare: c.Compare,
		Points: c.Points, Mapper: c.Mapper, Reducer: c.Reducer, Combiner: c.Combiner,
		MainClass: c.MainClass, WebhookURL: c.WebhookURL, ShowExpected: c.ShowExpected,
	}, nil
}

// configError names the field of a JSON decoding error.
func configError(err error) error {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr):
		return invalid(typeErr.Field, "must be a JSON %s", typeErr.Type.Kind())
	case errors.As(err, &syntaxErr), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return &FieldError{Field: "config", Problem: Malformed, Msg: fmt.Sprintf("config is not valid JSON: %v", err)}
	}
	if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		field := strings.Trim(f, `"`)
		return &FieldError{Field: field, Problem: Invalid,
			Msg: fmt.Sprintf("unknown field: %s (files come from the input and expected parts)", field)}
	}
	return invalid("config", "%v", err)
}

// CheckAssignment fills in an assignment's defaults and validates it,
// naming the field at fault. A webhook URL must be public unless
// allowPrivateWebhooks.
func CheckAssignment(a *contract.Assignment, allowPrivateWebhooks bool) error {
	a.Defaults()
	if err := a.Validate(); err != nil {
		var fe *contract.FieldError
		if errors.As(err, &fe) {
			return invalid(fe.Field, "%s", fe.Reason)
		}
		return err
	}
	if a.WebhookURL != "" {
		if err := webhook.CheckURL(a.WebhookURL, allowPrivateWebhooks); err != nil {
			return invalid("webhook_url", "%v", err)
		}
	}
	return nil
}

// AssignmentUpload is an assignment's configuration and files.
type AssignmentUpload struct {
	Config   contract.Assignment
	Input    map[string][]byte // input data, by relative path
	Expected map[string][]byte // expected output, by relative path
}

// PutAssignment creates or replaces an assignment. Everything is checked
// before anything is written. The files are written first, then the
// configuration naming them, then the files of the previous version that
// the new one lacks are removed: a running grading never sees an
// assignment without input. If a new assignment fails halfway, its files
// are removed again.
func (s *Service) PutAssignment(ctx context.Context, up AssignmentUpload) (stored contract.Assignment, created bool, err error) {
	a := up.Config
	if err := CheckAssignment(&a, s.opts.AllowPrivateWebhooks); err != nil {
		return contract.Assignment{}, false, err
	}
	parts := []struct {
		field  string
		prefix string
		files  map[string][]byte
	}{
		{field: "input", prefix: store.InputPrefix(a.Name), files: up.Input},
		{field: "expected", prefix: store.ExpectedPrefix(a.Name), files: up.Expected},
	}
	for _, p := range parts {
		if len(p.files) == 0 {
			return contract.Assignment{}, false, missing(p.field)
		}
		names := make([]string, 0, len(p.files))
		for name := range p.files {
			if !contract.ValidRelPath(name) {
				return contract.Assignment{}, false, unsafePath(p.field, name)
			}
			names = append(names, name)
		}
		sort.Strings(names)
		if err := contract.CheckFileNames(names); err != nil {
			return contract.Assignment{}, false, &FieldError{Field: p.field, Problem: Invalid, Msg: err.Error()}
		}
	}
	prev, err := s.store.Assignment(ctx, a.Name)
	isNew := errors.Is(err, store.ErrNotFound)
	if err != nil && !isNew {
		return contract.Assignment{}, false, err
	}
	var written []string // this upload's files, to remove again if a new assignment fails
	if isNew {
		defer func() {
			if err == nil {
				return
			}
			uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			if derr := s.store.DeleteFiles(uctx, written); derr != nil {
				s.opts.Log.Warn("roll back assignment", zap.String("assignment", a.Name), zap.Error(derr))
			}
		}()
	}
	a.InputFiles, a.ExpectedFiles = nil, nil
	for _, p := range parts {
		for rel, data := range p.files {
			written = append(written, p.prefix+rel)
			if err := s.store.PutFile(ctx, p.prefix+rel, data); err != nil {
				return contract.Assignment{}, false, err
			}
			if p.field == "input" {
				a.InputFiles = append(a.InputFiles, p.prefix+rel)
			} else {
				a.ExpectedFiles = append(a.ExpectedFiles, p.prefix+rel)
			}
		}
	}
	if err := s.store.PutAssignment(ctx, a); err != nil {
		return contract.Assignment{}, false, err
	}
	// Files of the previous version that this one lacks, once no reader
	// can be sent to them: the configuration names the new ones now.
	keep := make(map[string]bool, len(written))
	for _, n := range written {
		keep[n] = true
	}
	var stale []string
	for _, n := range append(prev.InputFiles, prev.ExpectedFiles...) {
		if !keep[n] {
			stale = append(stale, n)
		}
	}
	if err := s.store.DeleteFiles(ctx, stale); err != nil {
		s.opts.Log.Warn("remove files of the previous assignment version", zap.String("assignment", a.Name), zap.Error(err))
	}
	stored, err = s.store.Assignment(ctx, a.Name)
	if err != nil {
		return contract.Assignment{}, false, err
	}
	s.known.add(a.Name, s.now())
	return stored, isNew, nil
}
