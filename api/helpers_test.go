//go:build stack

package main

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/serviceerror"

	"github.com/gradeflow/gradeflow/contract"
	"github.com/gradeflow/gradeflow/store"
	"github.com/gradeflow/gradeflow/test/stacktest"
)

const (
	portalToken = "portal-token"
	staffToken  = "staff-token"
)

// part is one part of a multipart body: a field when filename is empty
// and file is false.
type part struct {
	name     string
	filename string
	data     []byte
	file     bool
}

func field(name, value string) part { return part{name: name, data: []byte(value)} }

func file(name, filename, content string) part {
	return part{name: name, filename: filename, data: []byte(content), file: true}
}

// multipartBody encodes parts, keeping file names as they are (slashes
// included).
func multipartBody(t testing.TB, parts ...part) (*bytes.Buffer, string) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for _, p := range parts {
		h := textproto.MIMEHeader{}
		if p.file {
			h.Set("Content-Disposition", fmt.Sprintf(`form-data; name=%q; filename=%q`, p.name, p.filename))
			h.Set("Content-Type", "application/octet-stream")
		} else {
			h.Set("Content-Disposition", fmt.Sprintf(`form-data; name=%q`, p.name))
		}
		w, err := mw.CreatePart(h)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(p.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	return &buf, mw.FormDataContentType()
}

// request is an HTTP request to a test server.
type request struct {
	method      string
	path        string
	token       string
	body        io.Reader
	contentType string
	header      map[string]string
}

// response is an answer, its body read.
type response struct {
	status int
	header http.Header
	body   []byte
}

// json decodes the answer's body into a map.
func (r response) json(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("answer %d is not a JSON object: %v: %s", r.status, err, r.body)
	}
	return m
}

func (e *testEnv) do(req request) response {
	e.t.Helper()
	hr, err := http.NewRequest(req.method, e.http.URL+req.path, req.body)
	if err != nil {
		e.t.Fatal(err)
	}
	if req.token != "" {
		hr.Header.Set("Authorization", "Bearer "+req.token)
	}
	if req.contentType != "" {
		hr.Header.Set("Content-Type", req.contentType)
	}
	for k, v := range req.header {
		hr.Header.Set(k, v)
	}
	resp, err := e.http.Client().Do(hr)
	if err != nil {
		e.t.Fatalf("%s %s: %v", req.method, req.path, err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("%s %s: read answer: %v", req.method, req.path, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: body}
}

// post sends a multipart submission.
func (e *testEnv) post(token string, header map[string]string, parts ...part) response {
	e.t.Helper()
	body, ct := multipartBody(e.t, parts...)
	return e.do(request{method: http.MethodPost, path: "/v1/submissions", token: token, body: body, contentType: ct, header: header})
}

func (e *testEnv) get(token, path string) response {
	e.t.Helper()
	return e.do(request{method: http.MethodGet, path: path, token: token})
}

// seedAssignment stores an assignment directly, files first.
func (e *testEnv) seedAssignment(name, webhook string) {
	e.t.Helper()
	ctx := context.Background()
	if err := e.store.PutFile(ctx, store.InputPrefix(name)+"in.txt", []byte("a b a\n")); err != nil {
		e.t.Fatal(err)
	}
	if err := e.store.PutFile(ctx, store.ExpectedPrefix(name)+"part-00000", []byte("a\t2\nb\t1\n")); err != nil {
		e.t.Fatal(err)
	}
	if err := e.store.PutAssignment(ctx, contract.Assignment{Name: name, Title: "Word count", WebhookURL: webhook}); err != nil {
		e.t.Fatal(err)
	}
}

// submissionParts is a valid submission of two files, one nested.
func submissionParts(assignment, student, id string) []part {
	ps := []part{
		field("assignment", assignment),
		field("student", student),
		file("files", "mapper.py", "print('map')\n"),
		file("files", "lib/reducer.py", "print('reduce')\n"),
	}
	if id != "" {
		ps = append(ps, field("id", id))
	}
	return ps
}

// wantNoState fails unless submission id left nothing anywhere: no
// document, no file, no workflow.
func (e *testEnv) wantNoState(id string) {
	e.t.Helper()
	ctx := context.Background()
	if _, err := e.store.Submission(ctx, id); !errors.Is(err, store.ErrNotFound) {
		e.t.Errorf("submission %s: document left behind (err %v)", id, err)
	}
	files, err := stacktest.Files(ctx, e.store.DB(), store.FilesBucket, store.SubmissionPrefix(id))
	if err != nil || len(files) > 0 {
		e.t.Errorf("submission %s: files left behind: %v (err %v)", id, files, err)
	}
	_, err = stack.temporal.DescribeWorkflowExecution(ctx, contract.WorkflowID(id), "")
	var nf *serviceerror.NotFound
	if !errors.As(err, &nf) {
		e.t.Errorf("submission %s: workflow exists or describe failed: %v", id, err)
	}
}

// zipEntry is one entry of a test archive.
type zipEntry struct {
	name string
	data []byte
	mode fs.FileMode // 0: a regular file
}

func makeZip(t testing.TB, entries ...zipEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		h := &zip.FileHeader{Name: e.name, Method: zip.Deflate, Modified: time.Now()}
		if e.mode != 0 {
			h.SetMode(e.mode)
		} else {
			h.SetMode(0o644)
		}
		w, err := zw.CreateHeader(h)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(e.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// lyingZip is an archive whose one entry claims to be small but inflates
// to n bytes.
func lyingZip(t testing.TB, n int) []byte {
	t.Helper()
	var compressed bytes.Buffer
	fw := zip.NewWriter(&compressed)
	w, err := fw.CreateHeader(&zip.FileHeader{Name: "x", Method: zip.Deflate})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(make([]byte, n)); err != nil {
		t.Fatal(err)
	}
	if err := fw.Close(); err != nil {
		t.Fatal(err)
	}
	zr, err := zip.NewReader(bytes.NewReader(compressed.Bytes()), int64(compressed.Len()))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := zr.File[0].OpenRaw()
	if err != nil {
		t.Fatal(err)
	}
	deflated, err := io.ReadAll(raw)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	h := zr.File[0].FileHeader
	h.UncompressedSize64 = 10 // the lie
	rw, err := zw.CreateRaw(&h)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rw.Write(deflated); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// wantError checks an error answer's status, code and field.
func wantError(t testing.TB, r response, status int, code, field string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
	m := r.json(t)
	if m["code"] != code {
		t.Errorf("code %v, want %q: %s", m["code"], code, r.body)
	}
	if msg, _ := m["error"].(string); msg == "" {
		t.Errorf("no error message: %s", r.body)
	}
	if field != "" && m["field"] != field {
		t.Errorf("field %v, want %q: %s", m["field"], field, r.body)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("content type %q", ct)
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
