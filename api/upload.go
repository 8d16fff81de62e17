package main

import (
	"archive/zip"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"mime/multipart"
	"net/http"
	"strings"

	"github.com/gradeflow/gradeflow/contract"
)

// Upload limits besides the configured byte caps.
const (
	maxFiles      = 1000     // files in one upload, zip entries included
	maxFieldBytes = 4 << 10  // bytes of one text field
	formOverhead  = 64 << 10 // bytes of multipart framing allowed beyond the file cap
)

// form is a parsed multipart upload: its text fields and its file parts,
// grouped by part name, each keyed by relative path.
type form struct {
	fields map[string]string
	files  map[string]map[string][]byte
	sizes  map[string]int64 // total file bytes per part name
}

// formSpec says which parts an upload may have.
type formSpec struct {
	fields   []string         // text fields
	files    []string         // parts holding files, each named by its relative path
	blobs    []string         // parts holding one opaque file (a zip)
	maxBytes int64            // total bytes of files and blobs
	maxField map[string]int64 // per-field size caps beyond maxFieldBytes
}

// readForm reads a multipart/form-data request body whole, bounded by
// spec.maxBytes, rejecting unknown parts, unsafe file names, duplicate
// names, and more than maxFiles files. It writes nothing anywhere, so a
// bad upload leaves no state behind.
func readForm(w http.ResponseWriter, r *http.Request, spec formSpec) (*form, error) {
	r.Body = http.MaxBytesReader(unwrapWriter(w), r.Body, spec.maxBytes+formOverhead)
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, errorf(http.StatusBadRequest, codeMalformed, "expected a multipart/form-data body: %v", err)
	}
	f := &form{fields: map[string]string{}, files: map[string]map[string][]byte{}, sizes: map[string]int64{}}
	var total int64
	count := 0
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, bodyError(err)
		}
		name := p.FormName()
		switch {
		case contains(spec.fields, name):
			if _, dup := f.fields[name]; dup {
				return nil, invalidField(name, "given more than once")
			}
			limit := int64(maxFieldBytes)
			if l, ok := spec.maxField[name]; ok {
				limit = l
			}
			data, err := readLimited(p, limit)
			if err != nil {
				return nil, err
			}
			if int64(len(data)) > limit {
				return nil, invalidField(name, "longer than %d bytes", limit)
			}
			f.fields[name] = string(data)
		case contains(spec.files, name) || contains(spec.blobs, name):
			fileName := rawFileName(p)
			if contains(spec.blobs, name) {
				if len(f.files[name]) > 0 {
					return nil, invalidField(name, "only one %s part is allowed", name)
				}
				fileName = name
			} else if !contract.ValidRelPath(fileName) {
				return nil, &apiError{Status: http.StatusBadRequest, Code: codeUnsafePath, Field: name,
					Msg: fmt.Sprintf("file name %q must be a relative path without '..', '.', empty or absolute parts", fileName)}
			}
			if count++; count > maxFiles {
				return nil, errorf(http.StatusBadRequest, codeInvalidField, "more than %d files", maxFiles)
			}
			if f.files[name] == nil {
				f.files[name] = map[string][]byte{}
			}
			if _, dup := f.files[name][fileName]; dup {
				return nil, invalidField(name, "file %q given more than once", fileName)
			}
			data, err := readLimited(p, spec.maxBytes-total)
			if err != nil {
				return nil, err
			}
			if total += int64(len(data)); total > spec.maxBytes {
				return nil, errorf(http.StatusRequestEntityTooLarge, codeTooLarge, "files exceed %d bytes", spec.maxBytes)
			}
			f.files[name][fileName] = data
			f.sizes[name] += int64(len(data))
		default:
			return nil, &apiError{Status: http.StatusBadRequest, Code: codeInvalidField, Field: name,
				Msg: fmt.Sprintf("unknown part %q", name)}
		}
	}
	return f, nil
}

// readLimited reads at most limit+1 bytes of r, so the caller can tell
// that it was longer than limit.
func readLimited(r io.Reader, limit int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, max(limit, 0)+1))
	if err != nil {
		return nil, bodyError(err)
	}
	return data, nil
}

// bodyError classifies an error reading the request body.
func bodyError(err error) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return errorf(http.StatusRequestEntityTooLarge, codeTooLarge, "request body exceeds %d bytes", mbe.Limit)
	}
	return errorf(http.StatusBadRequest, codeMalformed, "malformed multipart body: %v", err)
}

// rawFileName returns a part's file name as sent. Part.FileName keeps only
// the last element, but submissions name files by relative path.
func rawFileName(p *multipart.Part) string {
	_, params, err := mime.ParseMediaType(p.Header.Get("Content-Disposition"))
	if err != nil {
		return ""
	}
	return params["filename"]
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// unzip extracts a zip archive's regular files, keyed by relative path.
// It refuses entries that would escape the submission directory (".."
// or absolute paths), symlinks and other special files, more than
// maxFiles entries, and archives whose content exceeds maxBytes once
// unpacked, whatever their headers claim.
func unzip(data []byte, maxBytes int64) (map[string][]byte, error) {
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) {
		return nil, invalidField("zip", "not a valid zip archive: %v", err)
	}
	if len(zr.File) > maxFiles {
		return nil, invalidField("zip", "more than %d entries", maxFiles)
	}
	var declared uint64
	for _, zf := range zr.File {
		mode := zf.Mode()
		name := zf.Name
		if mode.IsDir() {
			name = strings.TrimSuffix(name, "/")
		}
		switch {
		case mode&fs.ModeSymlink != 0:
			return nil, &apiError{Status: http.StatusBadRequest, Code: codeUnsafePath, Field: "zip",
				Msg: fmt.Sprintf("zip entry %q is a symlink; only regular files are accepted", zf.Name)}
		case !mode.IsDir() && !mode.IsRegular():
			return nil, &apiError{Status: http.StatusBadRequest, Code: codeUnsafePath, Field: "zip",
				Msg: fmt.Sprintf("zip entry %q is a special file; only regular files are accepted", zf.Name)}
		case !contract.ValidRelPath(name):
			return nil, &apiError{Status: http.StatusBadRequest, Code: codeUnsafePath, Field: "zip",
				Msg: fmt.Sprintf("zip entry %q must be a relative path without '..', '.', empty or absolute parts", zf.Name)}
		}
		if declared += zf.UncompressedSize64; declared > uint64(maxBytes) {
			return nil, errorf(http.StatusRequestEntityTooLarge, codeTooLarge, "zip unpacks to more than %d bytes", maxBytes)
		}
	}
	files := map[string][]byte{}
	remaining := maxBytes
	for _, zf := range zr.File {
		if zf.Mode().IsDir() {
			continue
		}
		if _, dup := files[zf.Name]; dup {
			return nil, invalidField("zip", "entry %q appears more than once", zf.Name)
		}
		content, err := readZipEntry(zf, remaining)
		if err != nil {
			return nil, err
		}
		remaining -= int64(len(content))
		files[zf.Name] = content
	}
	return files, nil
}

// readZipEntry reads one entry, never more than limit bytes of it: the
// sizes in a zip's headers are the sender's word, not a bound.
func readZipEntry(zf *zip.File, limit int64) ([]byte, error) {
	rc, err := zf.Open()
	if err != nil {
		return nil, invalidField("zip", "entry %q: %v", zf.Name, err)
	}
	defer func() { _ = rc.Close() }()
	content, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if int64(len(content)) > limit {
		return nil, errorf(http.StatusRequestEntityTooLarge, codeTooLarge, "zip unpacks to more than the upload limit")
	}
	if err != nil {
		return nil, invalidField("zip", "entry %q: %v", zf.Name, err)
	}
	return content, nil
}
