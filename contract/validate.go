package contract

import (
	"fmt"
	"path"
	"regexp"
	"strings"
	"unicode"
)

// The names gradeflow accepts from outside: assignment names, submission
// IDs, student IDs and file names. The API and the starter check them at
// upload (through package intake) and the sanity step checks file names
// again, so that a name that reached the store some other way still never
// reaches a tool in the sandbox.

// ValidName reports whether s is usable as an assignment name: 1 to 64
// characters of a-z, 0-9, '-' and '_', starting with a letter or digit.
func ValidName(s string) bool {
	if len(s) == 0 || len(s) > 64 || s[0] == '-' || s[0] == '_' {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

// ValidID reports whether id is usable as a submission ID: 1 to 128
// characters of a-z, A-Z, 0-9, '-', '_' and '.', starting with a letter
// or digit.
func ValidID(id string) bool {
	if id == "" || len(id) > 128 || id[0] == '.' || id[0] == '-' || id[0] == '_' {
		return false
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

// ValidStudent reports whether s is usable as a student ID: 1 to 128
// printable characters, no spaces, no control or direction-override
// characters, not starting with '-' or '@'.
func ValidStudent(s string) bool {
	if s == "" || len(s) > 128 || s[0] == '-' || s[0] == '@' {
		return false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) || unicode.IsSpace(r) || deceptive(r) {
			return false
		}
	}
	return true
}

// ValidRelPath reports whether p is a clean relative path that stays inside
// its directory: no "..", no absolute path, no empty or hidden-parent parts.
func ValidRelPath(p string) bool {
	if p == "" || len(p) > 255 || strings.HasPrefix(p, "/") || strings.Contains(p, "\\") || strings.ContainsRune(p, 0) {
		return false
	}
	if path.Clean(p) != p {
		return false
	}
	for _, part := range strings.Split(p, "/") {
		if part == "" || part == "." || part == ".." {
			return false
		}
	}
	return true
}

// CheckFileNames refuses a set of file names the sandbox cannot lay out or
// that could read as options to the tools it runs: a name that is not a
// clean relative path, a path element starting with '-' or '@', control or
// direction-override characters, and a name that is also a directory of
// another (x and x/y). The error names the file.
func CheckFileNames(files []string) error {
	set := make(map[string]bool, len(files))
	for _, f := range files {
		set[f] = true
	}
	for _, f := range files {
		if !ValidRelPath(f) {
			return fmt.Errorf("file name %q is not allowed: it must be a relative path without '..', '.', empty or absolute parts", f)
		}
		for _, part := range strings.Split(f, "/") {
			if strings.HasPrefix(part, "-") || strings.HasPrefix(part, "@") {
				return fmt.Errorf("file name %q is not allowed: no part of a name may start with '-' or '@'", f)
			}
		}
		for _, r := range f {
			if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || deceptive(r) {
				return fmt.Errorf("file name %q is not allowed: it contains a control or direction-override character", f)
			}
		}
		for dir := path.Dir(f); dir != "." && dir != "/"; dir = path.Dir(dir) {
			if set[dir] {
				return fmt.Errorf("file names %q and %q collide: %s cannot be both a file and a directory", dir, f, dir)
			}
		}
	}
	return nil
}

// deceptive reports the invisible characters that make a name read as
// something it is not: direction marks, embeddings, overrides and isolates,
// zero-width characters and the byte-order mark.
func deceptive(r rune) bool {
	switch {
	case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069, r == 0x200e, r == 0x200f, r == 0x061c:
		return true
	case r >= 0x200b && r <= 0x200d, r == 0x2060, r == 0xfeff:
		return true
	}
	return false
}

var imageRef = regexp.MustCompile(`^[a-z0-9]+([._/-][a-z0-9]+)*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?$`)

// validImage reports whether s reads as a Docker image reference.
func validImage(s string) bool { return len(s) <= 255 && imageRef.MatchString(s) }
