package sandbox

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
)

// TarLimits bound what ParseTar accepts of a container's result tar. Every
// limit is checked before the bytes it covers are looked at, and nothing is
// ever allocated from a size the tar claims.
type TarLimits struct {
	MaxEntries    int   // headers of any type
	MaxEntryBytes int64 // bytes of one file
	MaxTotalBytes int64 // bytes of all files together
}

// TarFile is one regular file of a result tar. Data aliases the buffer
// given to ParseTar: it is not copied.
type TarFile struct {
	Name string
	Data []byte
}

// ErrUnsafeTar is returned (wrapped) for a tar that breaks a limit or uses a
// feature a result tar never needs: sparse files, PAX or GNU extension
// headers (which can override sizes and names), links, devices, base-256
// sizes, absolute or dot-dot names.
var ErrUnsafeTar = errors.New("unsafe result tar")

const tarBlock = 512

// ParseTar reads a plain ustar/v7 archive held in data (the worker's capped
// copy of a container's stdout) and returns its regular files in order.
// Directory entries are skipped. It accepts only what the runtime image's
// runner writes (`tar --format=ustar`): regular files and directories with
// octal sizes. Memory use is a few small headers per entry whatever the tar
// claims, since file contents are sub-slices of data.
func ParseTar(data []byte, lim TarLimits) ([]TarFile, error) {
	files, _, err := parseTar(data, lim, false)
	return files, err
}

// ParseTarStream reads archives that follow each other in data (the
// runner writes one per test as it ends), as ParseTar reads one, and
// stops without error at an entry that is not complete yet: it returns the
// complete entries and the offset just past the last of them. Limits
// count over all archives.
func ParseTarStream(data []byte, lim TarLimits) (files []TarFile, done int, err error) {
	return parseTar(data, lim, true)
}

func parseTar(data []byte, lim TarLimits, stream bool) ([]TarFile, int, error) {
	var files []TarFile
	done := 0
	var total int64
	entries := 0
	zero := make([]byte, tarBlock)
	for off := 0; ; {
		if len(data)-off < tarBlock {
			if len(data) == off || stream {
				return files, done, nil // no end marker: tolerated (a truncated stream is caught by the stdout cap)
			}
			return nil, 0, fmt.Errorf("%w: truncated header at byte %d", ErrUnsafeTar, off)
		}
		hdr := data[off : off+tarBlock]
		off += tarBlock
		if bytes.Equal(hdr, zero) {
			if stream {
				done = off // between archives
				continue
			}
			return files, done, nil // end of archive
		}
		entries++
		if entries > lim.MaxEntries {
			return nil, 0, fmt.Errorf("%w: more than %d entries", ErrUnsafeTar, lim.MaxEntries)
		}
		if err := tarChecksum(hdr); err != nil {
			return nil, 0, err
		}
		size, err := tarOctal(hdr[124:136])
		if err != nil {
			return nil, 0, fmt.Errorf("%w: entry %d: size: %v", ErrUnsafeTar, entries, err)
		}
		switch flag := hdr[156]; flag {
		case '0', 0:
		case '5':
			if size != 0 {
				return nil, 0, fmt.Errorf("%w: entry %d: directory with data", ErrUnsafeTar, entries)
			}
			continue
		case 'S', 'x', 'g', 'L', 'K':
			return nil, 0, fmt.Errorf("%w: entry %d: extension header %q (sparse, PAX or GNU long name) not accepted", ErrUnsafeTar, entries, flag)
		default:
			return nil, 0, fmt.Errorf("%w: entry %d: type %q is not a regular file", ErrUnsafeTar, entries, flag)
		}
		name, err := tarName(hdr)
		if err != nil {
			return nil, 0, err
		}
		if size > lim.MaxEntryBytes {
			return nil, 0, fmt.Errorf("%w: %s: %d bytes, over the limit of %d per file", ErrUnsafeTar, name, size, lim.MaxEntryBytes)
		}
		if total+size > lim.MaxTotalBytes {
			return nil, 0, fmt.Errorf("%w: more than %d bytes of files", ErrUnsafeTar, lim.MaxTotalBytes)
		}
		if int64(len(data)-off) < size {
			if stream {
				return files, done, nil // the rest has not arrived yet
			}
			return nil, 0, fmt.Errorf("%w: %s: claims %d bytes, %d left", ErrUnsafeTar, name, size, len(data)-off)
		}
		total += size
		files = append(files, TarFile{Name: name, Data: data[off : off+int(size) : off+int(size)]})
		// Skip the data rounded up to whole blocks (size fits in data here).
		off += int((size + tarBlock - 1) / tarBlock * tarBlock)
		if off > len(data) {
			off = len(data)
		}
		done = off
	}
}

// tarChecksum verifies a header's checksum (unsigned sum, checksum field as spaces).
func tarChecksum(hdr []byte) error {
	want, err := tarOctal(hdr[148:156])
	if err != nil {
		return fmt.Errorf("%w: header checksum: %v", ErrUnsafeTar, err)
	}
	var sum int64
	for i, c := range hdr {
		if i >= 148 && i < 156 {
			c = ' '
		}
		sum += int64(c)
	}
	if sum != want {
		return fmt.Errorf("%w: bad header checksum", ErrUnsafeTar)
	}
	return nil
}

// tarName returns the entry's name (ustar prefix + name), cleaned of a
// leading "./", refusing absolute paths, "..", empty names and NULs inside.
func tarName(hdr []byte) (string, error) {
	name := cstr(hdr[0:100])
	if string(hdr[257:262]) == "ustar" {
		if p := cstr(hdr[345:500]); p != "" {
			name = p + "/" + name
		}
	}
	name = strings.TrimPrefix(name, "./")
	name = strings.TrimSuffix(name, "/")
	if name == "" || strings.HasPrefix(name, "/") || strings.ContainsAny(name, "\\\x00") {
		return "", fmt.Errorf("%w: bad entry name %q", ErrUnsafeTar, name)
	}
	for _, part := range strings.Split(name, "/") {
		if part == "" || part == "." || part == ".." {
			return "", fmt.Errorf("%w: bad entry name %q", ErrUnsafeTar, name)
		}
	}
	return name, nil
}

func cstr(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// tarOctal parses a NUL/space-terminated octal field. Base-256 (binary)
// sizes, which only huge files need, are refused.
func tarOctal(b []byte) (int64, error) {
	if len(b) > 0 && b[0]&0x80 != 0 {
		return 0, errors.New("base-256 number")
	}
	var n int64
	digits, ended := 0, false
	for _, c := range b {
		switch {
		case c == ' ' || c == 0:
			ended = digits > 0 || ended
		case c >= '0' && c <= '7' && !ended:
			if n > (1<<62)/8 {
				return 0, errors.New("number too large")
			}
			n = n*8 + int64(c-'0')
			digits++
		default:
			return 0, fmt.Errorf("not octal: %q", b)
		}
	}
	return n, nil
}
