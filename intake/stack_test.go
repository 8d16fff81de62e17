//go:build stack

package intake

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/gradeflow/gradeflow/contract"
	"github.com/gradeflow/gradeflow/store"
	"github.com/gradeflow/gradeflow/test/stacktest"
)

// The real stack of this package's stack tests: a MongoDB-compatible
// server and a Temporal dev server, without workers (started workflows
// wait).
var stack struct {
	store    *store.Store
	temporal client.Client
}

func TestMain(m *testing.M) { os.Exit(runMain(m)) }

func runMain(m *testing.M) int {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	g, err := stacktest.NewGroup("gradeflow-intake-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		return 1
	}
	defer g.Stop()
	uri, err := g.Mongo(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: MongoDB-compatible server:", err)
		return 1
	}
	_, tc, _, err := g.Temporal(ctx, stacktest.TemporalOptions{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: Temporal dev server:", err)
		return 1
	}
	defer tc.Close()
	st, err := store.Open(uri, "intake_"+randHex(4))
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		return 1
	}
	defer func() { _ = st.Close(context.Background()) }()
	if err := st.PutAssignment(ctx, contract.Assignment{Name: "wc"}); err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: seed assignment:", err)
		return 1
	}
	stack.store, stack.temporal = st, tc
	return m.Run()
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func files() map[string][]byte {
	return map[string][]byte{"mapper.py": []byte("print('m')\n"), "reducer.py": []byte("print('r')\n")}
}

// started reports whether the submission's workflow was ever started.
func started(t *testing.T, id string) bool {
	t.Helper()
	_, err := stack.temporal.DescribeWorkflowExecution(context.Background(), contract.WorkflowID(id), "")
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	return true
}

// TestConcurrentSubmitsStartOnce races requests with the same ID: one
// creates the submission and starts its workflow once all its files are
// stored; the others answer the existing submission or "in progress",
// never start anything themselves, and never see an error of another kind.
func TestConcurrentSubmitsStartOnce(t *testing.T) {
	s := New(stack.store, stack.temporal, Options{})
	id := "race-" + randHex(4)
	const n = 8
	var wg sync.WaitGroup
	results := make([]Submitted, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			results[i], errs[i] = s.Submit(context.Background(), Submission{ID: id, Assignment: "wc", Student: "ada", Files: files()})
		})
	}
	wg.Wait()
	created := 0
	for i := range n {
		switch {
		case errs[i] == nil && results[i].Created:
			created++
		case errs[i] == nil:
			if results[i].Existing.Uploading {
				t.Errorf("request %d answered a submission still uploading", i)
			}
		case !errors.Is(errs[i], ErrBusy):
			t.Errorf("request %d: %v, want nil or ErrBusy", i, errs[i])
		}
	}
	if created != 1 {
		t.Fatalf("%d requests created the submission, want 1", created)
	}
	sub, err := stack.store.Submission(context.Background(), id)
	if err != nil || sub.Uploading || len(sub.Files) != 2 {
		t.Fatalf("submission %+v, err %v: want two files, upload complete", sub, err)
	}
	stored, err := submissionFiles(context.Background(), stack.store, id)
	if err != nil || len(stored) != 2 {
		t.Fatalf("stored files %v, err %v", stored, err)
	}
	if !started(t, id) {
		t.Fatal("the workflow was never started")
	}
}

// TestSubmitWhileUploading: a request finding the submission still being
// uploaded starts nothing (its files are not all there) and says so.
func TestSubmitWhileUploading(t *testing.T) {
	s := New(stack.store, stack.temporal, Options{})
	id := "busy-" + randHex(4)
	ctx := context.Background()
	// The creating request, stopped between the document and its files.
	if _, err := stack.store.CreateSubmission(ctx, store.Submission{ID: id, Assignment: "wc", Student: "ada",
		Files: []string{"mapper.py", "reducer.py"}, WorkflowID: contract.WorkflowID(id)}); err != nil {
		t.Fatal(err)
	}
	_, err := s.Submit(ctx, Submission{ID: id, Assignment: "wc", Student: "ada", Files: files()})
	if !errors.Is(err, ErrBusy) {
		t.Fatalf("Submit during another's upload: %v, want ErrBusy", err)
	}
	if _, found, err := s.Resume(ctx, Submission{ID: id, Assignment: "wc", Student: "ada"}); !found || !errors.Is(err, ErrBusy) {
		t.Fatalf("Resume during another's upload: found %v, %v; want ErrBusy", found, err)
	}
	if started(t, id) {
		t.Fatal("a workflow was started for a submission whose files are not stored")
	}
}

// TestAbandonedUploadIsTakenOver: an upload whose request died long ago
// is removed, and the next request with its ID creates it afresh.
func TestAbandonedUploadIsTakenOver(t *testing.T) {
	s := New(stack.store, stack.temporal, Options{})
	id := "abandoned-" + randHex(4)
	ctx := context.Background()
	if _, err := stack.store.CreateSubmission(ctx, store.Submission{ID: id, Assignment: "wc", Student: "ada",
		Files: []string{"mapper.py"}, WorkflowID: contract.WorkflowID(id)}); err != nil {
		t.Fatal(err)
	}
	if err := stack.store.PutFile(ctx, store.SubmissionFile(id, "mapper.py"), []byte("half")); err != nil {
		t.Fatal(err)
	}
	s.now = func() time.Time { return time.Now().Add(abandonedAfter + time.Minute) }
	got, err := s.Submit(ctx, Submission{ID: id, Assignment: "wc", Student: "ada", Files: files()})
	if err != nil || !got.Created {
		t.Fatalf("Submit over an abandoned upload: created %v, %v", got.Created, err)
	}
	stored, err := submissionFiles(ctx, stack.store, id)
	if err != nil || len(stored) != 2 || string(stored["mapper.py"]) != "print('m')\n" {
		t.Fatalf("stored files %q, err %v: want the new upload's", stored, err)
	}
	if !started(t, id) {
		t.Fatal("the workflow was not started")
	}
}

// submissionFiles reads the stored files of submission id.
func submissionFiles(ctx context.Context, st *store.Store, id string) (map[string][]byte, error) {
	sub, err := st.Submission(ctx, id)
	if err != nil {
		return nil, err
	}
	return st.SubmissionFiles(ctx, sub, 64<<20)
}
