package redis

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestDumpFile_RoundTrip(t *testing.T) {
	in := []entry{
		{DB: 0, Key: "blog:a", PTTL: -1, Payload: []byte{0, 1, 2}},
		{DB: 3, Key: "blog:ünï", PTTL: 12345, Payload: bytes.Repeat([]byte("x"), 70000)},
		{DB: 0, Key: "blog:empty", PTTL: -1, Payload: nil},
	}
	var buf bytes.Buffer
	w, err := newDumpWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range in {
		if err := w.Write(e); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	var out []entry
	n, err := readDump(bytes.NewReader(buf.Bytes()), func(e entry) error {
		if e.Payload == nil {
			e.Payload = []byte{}
		}
		out = append(out, e)
		return nil
	})
	in[2].Payload = []byte{}
	if err != nil || n != 3 || !reflect.DeepEqual(out, in) {
		t.Fatalf("read %d, %v:\n%+v", n, err, out)
	}
	// Every cut is noticed.
	data := buf.Bytes()
	for cut := 0; cut < len(data); cut += 997 {
		if _, err := readDump(bytes.NewReader(data[:cut]), nil); err == nil {
			t.Fatalf("cut at %d of %d accepted", cut, len(data))
		} else if cut > len(dumpHeader) && !errors.Is(err, errTruncated) {
			t.Errorf("cut at %d: %v", cut, err)
		}
	}
	if _, err := readDump(strings.NewReader("garbage"), nil); err == nil {
		t.Error("garbage accepted")
	}
	if _, err := readDump(bytes.NewReader(append(append([]byte{}, data...), 0)), nil); err == nil {
		t.Error("trailing data accepted")
	}
}
