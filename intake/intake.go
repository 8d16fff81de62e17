// Package intake takes work into gradeflow, for the API and the starter
// alike: it checks and stores a new submission's files and document and
// starts its grading workflow, regrades a submission as a new one, and
// uploads an assignment's configuration and files. Both programs get the
// same validation, the same IDs and the same rollback: a request that
// fails leaves nothing half done.
package intake

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.uber.org/zap"

	"github.com/gradeflow/gradeflow/contract"
	"github.com/gradeflow/gradeflow/store"
)

// Problem is what is wrong with a field.
type Problem string

// Problems.
const (
	Missing   Problem = "missing"     // a required field is absent
	Invalid   Problem = "invalid"     // its value is wrong
	Unsafe    Problem = "unsafe_path" // a file name would escape its directory
	Malformed Problem = "malformed"   // it cannot be parsed at all
)

// FieldError is a request the service refuses because of one field, named
// as the API and the files name it.
type FieldError struct {
	Field   string
	Problem Problem
	Msg     string
}

func (e *FieldError) Error() string { return e.Msg }

func missing(field string) *FieldError {
	return &FieldError{Field: field, Problem: Missing, Msg: "missing field: " + field}
}

func invalid(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Problem: Invalid,
		Msg: fmt.Sprintf("invalid field %s: %s", field, fmt.Sprintf(format, args...))}
}

func unsafePath(field, name string) *FieldError {
	return &FieldError{Field: field, Problem: Unsafe,
		Msg: fmt.Sprintf("file name %q must be a relative path without '..', '.', empty or absolute parts", name)}
}

// Errors of requests that are well formed but cannot be served.
var (
	// ErrUnknownAssignment: the submission names an assignment that does not exist.
	ErrUnknownAssignment = errors.New("unknown assignment")
	// ErrConflict: the submission ID is taken by another student's or
	// assignment's submission, or a regrade cannot be made.
	ErrConflict = errors.New("conflict")
	// ErrBusy: another request is still storing the files of a submission
	// with this ID; retry in a few seconds.
	ErrBusy = errors.New("upload in progress")
)

// abandonedAfter is how long a submission may stay marked as uploading
// before a request with the same ID may take it over: far longer than any
// upload takes, so that only a request that died is overtaken.
const abandonedAfter = 10 * time.Minute

// Options are the service's limits.
type Options struct {
	// MaxSubmission bounds the bytes of a submission's files read back to
	// regrade it.
	MaxSubmission int64
	// AllowPrivateWebhooks lets assignments name webhook receivers on
	// loopback, link-local and private addresses (see webhook.CheckURL).
	AllowPrivateWebhooks bool
	// RuntimeImages are the images an assignment may name besides the default.
	RuntimeImages []string
	// MaxDataset bounds the bytes of one streamed file (a dataset).
	MaxDataset int64
	Log        *zap.Logger // nil: no logging
}

// Service is the intake. It is safe for concurrent use.
type Service struct {
	store    *store.Store
	temporal client.Client
	opts     Options
	known    knownAssignments
	now      func() time.Time
}

// New returns a service storing into st and starting workflows through tc.
func New(st *store.Store, tc client.Client, opts Options) *Service {
	if opts.Log == nil {
		opts.Log = zap.NewNop()
	}
	if opts.MaxDataset <= 0 {
		opts.MaxDataset = 4 << 30
	}
	if opts.MaxSubmission <= 0 {
		opts.MaxSubmission = 16 << 20
	}
	return &Service{store: st, temporal: tc, opts: opts, now: time.Now}
}

// Submission is a submission as the portal or the starter hands it in.
type Submission struct {
	ID         string // "": a new one (NewID)
	Assignment string
	Student    string
	Files      map[string][]byte // relative path → content
	Lane       string            // contract.LaneLive (empty) or contract.LaneRegrade
	regradeOf  string            // the submission a regrade regrades, recorded with it; a regrade supersedes nothing
}

// Submitted is an accepted submission.
type Submitted struct {
	ID         string
	WorkflowID string
	Run        client.WorkflowRun // its grading; Get waits for the contract.Result
	// Created is false when the ID existed already: then nothing new was
	// stored or started, and Existing is the submission that has it.
	Created  bool
	Existing store.Submission
	// RegradeOf is the regraded submission, for a regrade.
	RegradeOf string
}

// NewID returns a fresh submission ID that sorts by time.
func NewID(now time.Time) string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return now.UTC().Format("20060102t150405") + "-" + hex.EncodeToString(b)
}

// Check validates a submission and names it (a new ID when it has none),
// without storing anything: the assignment must exist, the student and ID
// be valid, and every file name be a safe relative path.
func (s *Service) Check(ctx context.Context, sub *Submission) error {
	switch {
	case sub.Assignment == "":
		return missing("assignment")
	case sub.Student == "":
		return missing("student")
	case !contract.ValidStudent(sub.Student):
		return invalid("student", "must be 1-128 printable characters without spaces or direction marks, not starting with '-' or '@'")
	case sub.ID != "" && !contract.ValidID(sub.ID):
		return invalid("id", "must be 1-128 characters of a-z, A-Z, 0-9, '-', '_' or '.', starting with a letter or digit")
	case len(sub.Files) == 0:
		return missing("files")
	}
	names := make([]string, 0, len(sub.Files))
	for name := range sub.Files {
		if !contract.ValidRelPath(name) {
			return unsafePath("files", name)
		}
		names = append(names, name)
	}
	sort.Strings(names) // the same name is reported for the same upload
	if err := contract.CheckFileNames(names); err != nil {
		return &FieldError{Field: "files", Problem: Invalid, Msg: err.Error()}
	}
	if err := s.assignmentExists(ctx, sub.Assignment); err != nil {
		return err
	}
	if sub.ID == "" {
		sub.ID = NewID(s.now())
	}
	return nil
}

// Submit checks a submission, stores its files and read-model document and
// starts its workflow. Only the request that created the document starts
// the workflow, and only once every file is stored. A submission whose ID
// exists starts nothing new: it answers Created false and the existing
// submission (after making sure its workflow runs), ErrBusy while another
// request still stores its files, or ErrConflict when it is another
// student's or assignment's. If the workflow cannot be started, the files
// and document are removed again.
func (s *Service) Submit(ctx context.Context, sub Submission) (Submitted, error) {
	if err := s.Check(ctx, &sub); err != nil {
		return Submitted{}, err
	}
	names := make([]string, 0, len(sub.Files))
	for name := range sub.Files {
		names = append(names, name)
	}
	sort.Strings(names)
	doc := store.Submission{
		ID: sub.ID, Assignment: sub.Assignment, Student: sub.Student, Files: names, WorkflowID: contract.WorkflowID(sub.ID),
		Lane: sub.Lane, RegradeOf: sub.regradeOf,
	}
	// Submissions of the student made after this instant are newer than
	// this one: it never supersedes them.
	before := s.now()
	// A second try follows only the removal of an abandoned upload.
	for range 2 {
		created, err := s.store.CreateSubmission(ctx, doc)
		if err != nil {
			return Submitted{}, err
		}
		if created {
			return s.upload(ctx, sub, names, before)
		}
		got, found, err := s.Resume(ctx, sub)
		if err != nil || found {
			return got, err
		}
	}
	return Submitted{}, fmt.Errorf("submission %s is being created concurrently: %w", sub.ID, ErrBusy)
}

// upload stores a created submission's files, marks them complete and
// starts its workflow, removing everything again if any of it fails.
func (s *Service) upload(ctx context.Context, sub Submission, names []string, submittedBefore time.Time) (Submitted, error) {
	undo := func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if err := s.store.DeleteSubmission(ctx, sub.ID); err != nil {
			s.opts.Log.Warn("roll back submission", zap.String("submission_id", sub.ID), zap.Error(err))
		}
	}
	files := make(map[string][]byte, len(sub.Files))
	for name, data := range sub.Files {
		files[store.SubmissionFile(sub.ID, name)] = data
	}
	if err := s.store.PutFiles(ctx, files); err != nil {
		undo()
		return Submitted{}, err
	}
	if err := s.store.FilesStored(ctx, sub.ID); err != nil {
		undo()
		return Submitted{}, err
	}
	run, err := s.start(ctx, contract.Input{SubmissionID: sub.ID, Assignment: sub.Assignment, Student: sub.Student, Lane: sub.Lane, Files: names})
	if err != nil {
		undo()
		return Submitted{}, err
	}
	if sub.regradeOf == "" && sub.Lane != contract.LaneRegrade && s.known.supersedes(sub.Assignment) {
		s.supersede(ctx, sub, submittedBefore)
	}
	return Submitted{ID: sub.ID, WorkflowID: run.GetID(), Run: run, Created: true}, nil
}

// supersede marks the student's earlier submissions of the assignment that
// have not started executing as superseded by sub (an assignment with
// supersede on), and signals their workflows so that they leave the queue
// at once. sub is accepted already: a failure here is logged, and a
// superseded submission whose signal is lost is still declined by its
// execute step.
func (s *Service) supersede(ctx context.Context, sub Submission, before time.Time) {
	log := s.opts.Log.With(zap.String("submission_id", sub.ID))
	ids, err := s.store.SupersedeEarlier(ctx, store.Submission{ID: sub.ID, Student: sub.Student, Assignment: sub.Assignment,
		Times: store.Times{Submitted: &before}}, s.now())
	if err != nil {
		log.Warn("supersede earlier submissions", zap.Error(err))
	}
	for _, id := range ids {
		if err := s.temporal.SignalWorkflow(ctx, contract.WorkflowID(id), "", contract.SignalSupersede, sub.ID); err != nil {
			log.Warn("signal superseded submission", zap.String("superseded", id), zap.Error(err))
		}
	}
	if len(ids) > 0 {
		log.Info("superseded earlier submissions", zap.Strings("superseded", ids))
	}
}

// Resume finds the submission that has sub.ID, if any (found false
// otherwise). When it is the same student's for the same assignment and
// its files are all stored, it makes sure its workflow runs (an earlier
// request may have died between storing and starting it) and answers it; a
// workflow that ran is never started again, so nothing is graded twice.
// While the creating request still stores the files it is ErrBusy; an
// upload abandoned long ago is removed, and found is false. Another
// student's or assignment's submission is ErrConflict.
func (s *Service) Resume(ctx context.Context, sub Submission) (got Submitted, found bool, err error) {
	existing, err := s.store.Submission(ctx, sub.ID)
	if errors.Is(err, store.ErrNotFound) {
		return Submitted{}, false, nil
	}
	if err != nil {
		return Submitted{}, false, err
	}
	if existing.Student != sub.Student || existing.Assignment != sub.Assignment {
		return Submitted{}, true, fmt.Errorf("submission %s exists for another student or assignment: %w", sub.ID, ErrConflict)
	}
	if existing.Uploading {
		if existing.Times.Submitted != nil && s.now().Sub(*existing.Times.Submitted) < abandonedAfter {
			return Submitted{}, true, fmt.Errorf("submission %s: another request is still storing its files: %w", sub.ID, ErrBusy)
		}
		removed, err := s.store.DeleteAbandonedUpload(ctx, sub.ID)
		if err != nil {
			return Submitted{}, true, err
		}
		if removed {
			s.opts.Log.Warn("removed an abandoned upload", zap.String("submission_id", sub.ID))
		}
		return Submitted{}, false, nil
	}
	run, err := s.start(ctx, contract.Input{SubmissionID: existing.ID, Assignment: existing.Assignment, Student: existing.Student, Lane: existing.Lane, Files: existing.Files})
	if err != nil {
		return Submitted{}, true, err
	}
	return Submitted{ID: existing.ID, WorkflowID: run.GetID(), Run: run, Existing: existing, RegradeOf: existing.RegradeOf}, true, nil
}

// start starts the submission workflow, or finds the one that already ran
// or runs for that submission.
func (s *Service) start(ctx context.Context, in contract.Input) (client.WorkflowRun, error) {
	run, err := s.temporal.ExecuteWorkflow(ctx, contract.StartOptions(in), contract.WorkflowName, in)
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	if errors.As(err, &started) {
		return s.temporal.GetWorkflow(ctx, contract.WorkflowID(in.SubmissionID), ""), nil
	}
	if err != nil {
		return nil, fmt.Errorf("start workflow %s: %w", contract.WorkflowID(in.SubmissionID), err)
	}
	return run, nil
}

// Regrade grades a submission's files again as a new submission
// "<id>-r<N>", linked to the old one by regrade_of.
func (s *Service) Regrade(ctx context.Context, id string) (Submitted, error) {
	old, err := s.store.Submission(ctx, id)
	if err != nil {
		return Submitted{}, err
	}
	return s.regrade(ctx, old, contract.LaneLive)
}

// regradeFiles reads old's files to grade them again; its assignment must
// still exist.
func (s *Service) regradeFiles(ctx context.Context, old store.Submission) (map[string][]byte, error) {
	if _, err := s.store.Assignment(ctx, old.Assignment); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			err = fmt.Errorf("assignment %q no longer exists: %w", old.Assignment, ErrUnknownAssignment)
		}
		return nil, err
	}
	files, err := s.store.SubmissionFiles(ctx, old, s.opts.MaxSubmission)
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("submission %s has no stored files to regrade: %w", old.ID, ErrConflict)
	}
	return files, nil
}

// regrade grades old's files again in lane, under the next free regrade
// number.
func (s *Service) regrade(ctx context.Context, old store.Submission, lane string) (Submitted, error) {
	files, err := s.regradeFiles(ctx, old)
	if err != nil {
		return Submitted{}, err
	}
	n, err := s.store.NextRegrade(ctx, old.ID)
	if err != nil {
		return Submitted{}, err
	}
	// Another regrade may take N between our read and our insert: then the
	// next number is tried.
	for range 8 {
		rid := regradeID(old.ID, n)
		if !contract.ValidID(rid) {
			return Submitted{}, fmt.Errorf("regrade ID %s would be too long: %w", rid, ErrConflict)
		}
		got, err := s.Submit(ctx, Submission{ID: rid, Assignment: old.Assignment, Student: old.Student, Files: files, Lane: lane, regradeOf: old.ID})
		if errors.Is(err, ErrBusy) {
			n++
			continue
		}
		if err != nil {
			return Submitted{}, err
		}
		if !got.Created {
			n++
			continue
		}
		got.RegradeOf = old.ID
		return got, nil
	}
	return Submitted{}, fmt.Errorf("too many concurrent regrades of %s; retry: %w", old.ID, ErrConflict)
}

// knownTTL is how long the service trusts that an assignment it saw
// exists. Nothing deletes assignments; this bounds the staleness should
// staff remove one from the database by hand.
const knownTTL = time.Minute

// knownAssignments remembers assignment names seen to exist, and whether
// they have supersede on, sparing each submission a lookup.
type knownAssignments struct {
	mu        sync.Mutex
	until     map[string]time.Time
	supersede map[string]bool
}

// supersedes reports whether the assignment, as last seen, has supersede on.
func (k *knownAssignments) supersedes(name string) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.supersede[name]
}

func (k *knownAssignments) has(name string, now time.Time) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return now.Before(k.until[name])
}

func (k *knownAssignments) add(a contract.Assignment, now time.Time) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.until == nil {
		k.until, k.supersede = map[string]time.Time{}, map[string]bool{}
	}
	k.until[a.Name] = now.Add(knownTTL)
	k.supersede[a.Name] = a.Supersede
}

// assignmentExists fails with ErrUnknownAssignment unless the assignment exists.
func (s *Service) assignmentExists(ctx context.Context, name string) error {
	now := s.now()
	if s.known.has(name, now) {
		return nil
	}
	a, err := s.store.Assignment(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("assignment %q: %w", name, ErrUnknownAssignment)
	} else if err != nil {
		return err
	}
	s.known.add(a, now)
	return nil
}
