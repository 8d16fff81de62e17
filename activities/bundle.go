package activities

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// runResult is result.json, which the runtime image's runner writes into the
// tar stream it prints on stdout when it finishes.
type runResult struct {
	OK        bool         `json:"ok"`
	Kind      string       `json:"kind"`
	ExitCode  int          `json:"exit_code"`
	Message   string       `json:"message"`
	Errors    []checkError `json:"errors"`
	ElapsedMS int64        `json:"elapsed_ms"`
}

// checkError is one problem found by a sanity check.
type checkError struct {
	File     string `json:"file"`
	Line     int    `json:"line"`
	Col      int    `json:"col"`
	Message  string `json:"message"`
	Category string `json:"category"` // "syntax" or "forbidden_import"
}

func (e checkError) String() string {
	loc := e.File
	if e.Line > 0 {
		loc += fmt.Sprintf(":%d", e.Line)
		if e.Col > 0 {
			loc += fmt.Sprintf(":%d", e.Col)
		}
	}
	if loc == "" {
		return e.Message
	}
	return loc + ": " + e.Message
}

// bundle is the parsed stdout of a runtime container.
type bundle struct {
	result *runResult
	files  map[string][]byte // every other regular file, by tar path
}

var errNoResult = errors.New("container wrote no result.json")

// parseBundle reads the tar stream a runtime container printed.
func parseBundle(stdout []byte) (bundle, error) {
	b := bundle{files: map[string][]byte{}}
	tr := tar.NewReader(bytes.NewReader(stdout))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return b, fmt.Errorf("read container output: %w", err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		name := strings.TrimPrefix(h.Name, "./")
		data, err := io.ReadAll(tr)
		if err != nil {
			return b, fmt.Errorf("read container output %s: %w", name, err)
		}
		if name == "result.json" {
			var r runResult
			if err := json.Unmarshal(data, &r); err != nil {
				return b, fmt.Errorf("parse result.json: %w", err)
			}
			b.result = &r
			continue
		}
		b.files[name] = data
	}
	if b.result == nil {
		return b, errNoResult
	}
	return b, nil
}
