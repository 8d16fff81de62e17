package sandbox

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
)

// rawHeader builds one 512-byte ustar header with a valid checksum, so
// tests can claim any size or type without writing the data.
func rawHeader(name string, flag byte, size string) []byte {
	h := make([]byte, tarBlock)
	copy(h[0:100], name)
	copy(h[100:108], "0000644\x00")
	copy(h[124:136], size)
	h[156] = flag
	copy(h[257:263], "ustar\x00")
	copy(h[263:265], "00")
	for i := 148; i < 156; i++ {
		h[i] = ' '
	}
	var sum int64
	for _, c := range h {
		sum += int64(c)
	}
	copy(h[148:156], fmt.Sprintf("%06o\x00 ", sum))
	return h
}

func block(data string) []byte {
	n := (len(data) + tarBlock - 1) / tarBlock * tarBlock
	b := make([]byte, n)
	copy(b, data)
	return b
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func eof() []byte { return make([]byte, 2*tarBlock) }

// goTar writes files with the standard library's writer in ustar format,
// as GNU tar --format=ustar does.
func goTar(t *testing.T, files ...string) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := tar.NewWriter(&buf)
	for i := 0; i+1 < len(files); i += 2 {
		if err := w.WriteHeader(&tar.Header{Name: files[i], Mode: 0o644, Size: int64(len(files[i+1])), Typeflag: tar.TypeReg, Format: tar.FormatUSTAR}); err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte(files[i+1])); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

var testLimits = TarLimits{MaxEntries: 8, MaxEntryBytes: 1 << 10, MaxTotalBytes: 2 << 10}

func TestParseTar(t *testing.T) {
	const gib8 = "77777777777\x00" // 8 GiB - 1, the largest octal size
	tests := []struct {
		name    string
		data    []byte
		want    []string // name=data of each file
		wantErr string   // substring; "" means success
	}{
		{name: "files", data: goTar(t, "result.json", `{"ok":true}`, "output/part-00000", "a 1\n"),
			want: []string{`result.json={"ok":true}`, "output/part-00000=a 1\n"}},
		{name: "dot slash and directory", data: cat(rawHeader("./output/", '5', "0"), rawHeader("./a", '0', "00000000003"), block("xyz"), eof()),
			want: []string{"a=xyz"}},
		{name: "empty", data: nil, want: nil},
		{name: "claimed size over the entry cap", data: cat(rawHeader("big", '0', gib8), block("x"), eof()), wantErr: "over the limit"},
		{name: "claimed size beyond the data", data: cat(rawHeader("short", '0', "00000002000"), block("x")), wantErr: "claims 1024 bytes"},
		{name: "total over the cap", data: cat(
			rawHeader("a", '0', "00000002000"), block(strings.Repeat("a", 1024)),
			rawHeader("b", '0', "00000002000"), block(strings.Repeat("b", 1024)),
			rawHeader("c", '0', "00000002000"), block(strings.Repeat("c", 1024)), eof()), wantErr: "more than 2048 bytes"},
		{name: "too many entries", data: cat(
			rawHeader("1", '5', "0"), rawHeader("2", '5', "0"), rawHeader("3", '5', "0"), rawHeader("4", '5', "0"), rawHeader("5", '5', "0"),
			rawHeader("6", '5', "0"), rawHeader("7", '5', "0"), rawHeader("8", '5', "0"), rawHeader("9", '5', "0"), eof()), wantErr: "more than 8 entries"},
		{name: "old GNU sparse", data: cat(rawHeader("sparse", 'S', "00000001000"), block("x"), eof()), wantErr: "extension header"},
		{name: "PAX header overriding the size", data: cat(rawHeader("pax", 'x', "00000000033"), block("27 size=9999999999999999\n"),
			rawHeader("f", '0', "00000000001"), block("x"), eof()), wantErr: "extension header"},
		{name: "PAX GNU.sparse", data: cat(rawHeader("pax", 'x', "00000000030"), block("24 GNU.sparse.major=1\n"), eof()), wantErr: "extension header"},
		{name: "global PAX", data: cat(rawHeader("g", 'g', "0"), eof()), wantErr: "extension header"},
		{name: "GNU long name", data: cat(rawHeader("././@LongLink", 'L', "00000000005"), block("long\x00"), eof()), wantErr: "extension header"},
		{name: "symlink", data: cat(rawHeader("result.json", '2', "0"), eof()), wantErr: "not a regular file"},
		{name: "hard link", data: cat(rawHeader("result.json", '1', "0"), eof()), wantErr: "not a regular file"},
		{name: "base-256 size", data: cat(rawHeader("b256", '0', "\x80\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00"), eof()), wantErr: "base-256"},
		{name: "dot dot", data: cat(rawHeader("output/../../x", '0', "0"), eof()), wantErr: "bad entry name"},
		{name: "absolute", data: cat(rawHeader("/etc/passwd", '0', "0"), eof()), wantErr: "bad entry name"},
		{name: "bad checksum", data: func() []byte { h := rawHeader("a", '0', "0"); h[0] = 'b'; return cat(h, eof()) }(), wantErr: "checksum"},
		{name: "truncated header", data: rawHeader("a", '0', "0")[:100], wantErr: "truncated header"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			files, err := ParseTar(tc.data, testLimits)
			if tc.wantErr != "" {
				if err == nil || !errors.Is(err, ErrUnsafeTar) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want ErrUnsafeTar mentioning %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, f := range files {
				got = append(got, f.Name+"="+string(f.Data))
			}
			if strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// TestParseTarMemoryFlat shows that what a tar claims never drives the
// worker's memory: a header claiming 8 GiB, a sparse entry, or a stream of
// thousands of entries cost the same few allocations as a tiny result.
func TestParseTarMemoryFlat(t *testing.T) {
	lim := TarLimits{MaxEntries: 1000, MaxEntryBytes: 16 << 20, MaxTotalBytes: 16 << 20}
	// The capped stdout a worker could hold: 16 MiB, mostly one honest file.
	bigFile := strings.Repeat("w 1\n", 4<<20)
	inputs := map[string][]byte{
		"claims 8 GiB":        cat(rawHeader("big", '0', "77777777777\x00"), block("x"), eof()),
		"sparse":              cat(rawHeader("sparse", 'S', "77777777777\x00"), block("x"), eof()),
		"pax size":            cat(rawHeader("pax", 'x', "00000000033"), block("27 size=9999999999999999\n"), eof()),
		"thousands of dirs":   bytes.Repeat(rawHeader("d", '5', "0"), 20000),
		"one 16 MiB file":     goTar(t, "output/part-00000", bigFile),
		"small honest result": goTar(t, "result.json", `{"ok":true}`),
	}
	for name, data := range inputs {
		allocs := testing.AllocsPerRun(20, func() { _, _ = ParseTar(data, lim) })
		if allocs > 40 {
			t.Errorf("%s: %.0f allocations per parse, want a handful", name, allocs)
		}
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for i := 0; i < 50; i++ {
			_, _ = ParseTar(data, lim)
		}
		runtime.ReadMemStats(&after)
		if d := after.TotalAlloc - before.TotalAlloc; d > 1<<20 {
			t.Errorf("%s: 50 parses allocated %d bytes, want well under 1 MiB", name, d)
		}
	}
}

func TestParseTarStream(t *testing.T) {
	one := func(name, body string) []byte {
		var b bytes.Buffer
		w := tar.NewWriter(&b)
		_ = w.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg, Format: tar.FormatUSTAR})
		_, _ = w.Write([]byte(body))
		_ = w.Close()
		return b.Bytes()
	}
	a, b := one("tests/a/result.json", "{}"), one("tests/b/result.json", `{"ok":true}`)
	stream := append(append([]byte{}, a...), b...)
	lim := TarLimits{MaxEntries: 10, MaxEntryBytes: 1 << 20, MaxTotalBytes: 1 << 20}
	files, done, err := ParseTarStream(stream, lim)
	if err != nil || len(files) != 2 || files[1].Name != "tests/b/result.json" || done != len(stream) {
		t.Fatalf("whole stream: %d files, done %d of %d, %v", len(files), done, len(stream), err)
	}
	// The second archive's data has not arrived: only the first counts.
	files, done, err = ParseTarStream(stream[:len(a)+512+1], lim)
	if err != nil || len(files) != 1 || done != len(a) {
		t.Fatalf("partial stream: %d files, done %d, want 1 and %d (%v)", len(files), done, len(a), err)
	}
	// ParseTar still stops at the first archive's end.
	if files, err := ParseTar(stream, lim); err != nil || len(files) != 1 {
		t.Fatalf("ParseTar: %d files, %v", len(files), err)
	}
}
