package intake

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
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
	Name             string       `json:"name"`
	Title            string       `json:"title"`
	Runtimes         []string     `json:"runtimes"`
	TimeLimitSeconds int          `json:"time_limit_seconds"`
	MemoryMB         int          `json:"memory_mb"`
	CPUs             float64      `json:"cpus"`
	ForbiddenModules []string     `json:"forbidden_modules"`
	Compare          string       `json:"compare"`
	Points           float64      `json:"points"`
	Mapper           string       `json:"mapper"`
	Reducer          string       `json:"reducer"`
	Combiner         string       `json:"combiner"`
	MainClass        string       `json:"main_class"`
	WebhookURL       string       `json:"webhook_url"`
	ShowExpected     bool         `json:"show_expected"`
	Tests            []testConfig `json:"tests"`
	DueAt            *time.Time   `json:"due_at"`
	Image            string       `json:"image"`
	Supersede        bool         `json:"supersede"`
}

// testConfig is one test as staff write it (contract.TestSpec without the
// files the service resolves).
type testConfig struct {
	Name             string                  `json:"name"`
	Points           float64                 `json:"points"`
	Visibility       string                  `json:"visibility"`
	Input            string                  `json:"input"`
	Dataset          string                  `json:"dataset"`
	Expected         string                  `json:"expected"`
	Compare          string                  `json:"compare"`
	Reducers         int                     `json:"reducers"`
	Counters         []contract.CounterCheck `json:"counters"`
	TimeLimitSeconds int                     `json:"time_limit_seconds"`
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
		Tests: testSpecs(c.Tests), DueAt: c.DueAt, Image: c.Image, Supersede: c.Supersede,
	}, nil
}

func testSpecs(cs []testConfig) []contract.TestSpec {
	var out []contract.TestSpec
	for _, c := range cs {
		out = append(out, contract.TestSpec{Name: c.Name, Points: c.Points, Visibility: c.Visibility,
			Input: c.Input, Dataset: c.Dataset, Expected: c.Expected, Compare: c.Compare, Reducers: c.Reducers,
			Counters: c.Counters, TimeLimitSeconds: c.TimeLimitSeconds})
	}
	return out
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
	Config contract.Assignment
	// The single-test form: input data and expected output, by relative path.
	Input    map[string][]byte
	Expected map[string][]byte
	// The tests form: the assignment's directory, by relative path; each
	// test's input and expected name directories of it. Large files may
	// come as Streams instead, opened one at a time and never held in memory.
	Files   map[string][]byte
	Streams map[string]func() (io.ReadCloser, error)
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
	if a.Image != "" && !slices.Contains(s.opts.RuntimeImages, a.Image) {
		return contract.Assignment{}, false, invalid("image", "%q is not one of the runtime images this service allows (GRADEFLOW_RUNTIME_IMAGES)", a.Image)
	}
	if len(a.Tests) > 0 {
		return s.putTests(ctx, a, up)
	}
	if len(up.Files) > 0 || len(up.Streams) > 0 {
		return contract.Assignment{}, false, invalid("files", "an assignment without tests takes its files as input and expected")
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
	s.known.add(stored, s.now())
	return stored, isNew, nil
}

// putTests stores an assignment of the tests form. Every file goes into
// the store by content (a file that other tests or assignments have is
// not stored again), datasets are resolved to the blobs they name now,
// and the configuration naming them all is written last: a grading never
// sees a test without its files. Blobs are shared, so nothing is removed.
func (s *Service) putTests(ctx context.Context, a contract.Assignment, up AssignmentUpload) (contract.Assignment, bool, error) {
	if len(up.Input) > 0 || len(up.Expected) > 0 {
		return contract.Assignment{}, false, invalid("input", "an assignment with tests takes its files as files (the assignment directory), not input and expected")
	}
	names := make([]string, 0, len(up.Files)+len(up.Streams))
	for name := range up.Files {
		names = append(names, name)
	}
	for name := range up.Streams {
		if _, dup := up.Files[name]; dup {
			return contract.Assignment{}, false, invalid("files", "%s is given twice", name)
		}
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if !contract.ValidRelPath(name) {
			return contract.Assignment{}, false, unsafePath("files", name)
		}
	}
	if err := contract.CheckFileNames(names); err != nil {
		return contract.Assignment{}, false, &FieldError{Field: "files", Problem: Invalid, Msg: err.Error()}
	}
	under := func(dir string) []string {
		var in []string
		for _, n := range names {
			if strings.HasPrefix(n, dir+"/") {
				in = append(in, n)
			}
		}
		return in
	}
	// Check every test's files before storing any.
	for i, t := range a.Tests {
		if t.Input != "" && len(under(t.Input)) == 0 {
			return contract.Assignment{}, false, invalid(fmt.Sprintf("tests[%d].input", i), "no files under %s/", t.Input)
		}
		if len(under(t.Expected)) == 0 {
			return contract.Assignment{}, false, invalid(fmt.Sprintf("tests[%d].expected", i), "no files under %s/", t.Expected)
		}
		if t.Dataset != "" {
			if _, err := s.store.GetDataset(ctx, t.Dataset); errors.Is(err, store.ErrNotFound) {
				return contract.Assignment{}, false, invalid(fmt.Sprintf("tests[%d].dataset", i), "no dataset named %q (PUT /v1/datasets/%s first)", t.Dataset, t.Dataset)
			} else if err != nil {
				return contract.Assignment{}, false, err
			}
		}
	}
	refs := map[string]contract.FileRef{}
	for _, name := range names {
		var ref contract.FileRef
		var err error
		if data, ok := up.Files[name]; ok {
			ref, err = s.store.PutBlob(ctx, name, data)
		} else {
			ref, err = s.putStream(ctx, name, up.Streams[name])
		}
		if err != nil {
			return contract.Assignment{}, false, err
		}
		refs[name] = ref
	}
	files := func(dir string) []contract.FileRef {
		var out []contract.FileRef
		for _, n := range under(dir) {
			r := refs[n]
			r.Name = strings.TrimPrefix(n, dir+"/")
			out = append(out, r)
		}
		return out
	}
	for i := range a.Tests {
		t := &a.Tests[i]
		t.ExpectedFiles = files(t.Expected)
		if t.Dataset != "" {
			d, err := s.store.GetDataset(ctx, t.Dataset)
			if err != nil {
				return contract.Assignment{}, false, err
			}
			t.InputFiles = []contract.FileRef{{Name: d.Name, Blob: d.Blob, SHA256: d.SHA256, Size: d.Size}}
		} else {
			t.InputFiles = files(t.Input)
		}
	}
	_, err := s.store.Assignment(ctx, a.Name)
	isNew := errors.Is(err, store.ErrNotFound)
	if err != nil && !isNew {
		return contract.Assignment{}, false, err
	}
	if err := s.store.PutAssignment(ctx, a); err != nil {
		return contract.Assignment{}, false, err
	}
	stored, err := s.store.Assignment(ctx, a.Name)
	if err != nil {
		return contract.Assignment{}, false, err
	}
	s.known.add(stored, s.now())
	return stored, isNew, nil
}

func (s *Service) putStream(ctx context.Context, name string, open func() (io.ReadCloser, error)) (contract.FileRef, error) {
	r, err := open()
	if err != nil {
		return contract.FileRef{}, fmt.Errorf("open %s: %w", name, err)
	}
	defer r.Close()
	return s.store.PutBlobFrom(ctx, name, r, s.opts.MaxDataset, nil)
}

// PutDataset stores a named dataset from r, streaming: it is hashed while
// it is stored, never held in memory, and stored once whatever its name.
func (s *Service) PutDataset(ctx context.Context, name string, r io.Reader) (store.Dataset, error) {
	if !contract.ValidName(name) {
		return store.Dataset{}, invalid("name", "must be 1-64 characters of a-z, 0-9, '-' or '_'")
	}
	ref, err := s.store.PutBlobFrom(ctx, name, r, s.opts.MaxDataset, nil)
	if err != nil {
		return store.Dataset{}, err
	}
	return s.store.PutDataset(ctx, name, ref)
}
