package redis

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// The backup of an app's keys is a file of our own, not an RDB: Redis has
// no way to save part of its keyspace, so every key of the app is written
// with DUMP's payload (Redis's serialization of one value, restored with
// RESTORE on this or a newer Redis) and its time to live:
//
//	"toppcloud-redis-dump 1\n"
//	per key:  0x01, uvarint db, uvarint len, key, varint pttl (-1: none),
//	          uvarint len, payload
//	end:      0xff, uvarint number of keys
//
// The end record makes a file cut short detectable without the manifest.
const dumpHeader = "toppcloud-redis-dump 1\n"

const (
	tagKey = 0x01
	tagEnd = 0xff
	// maxField bounds one key or payload (Redis's own limit is 512 MB).
	maxField = 512 << 20
)

// entry is one key of a dump.
type entry struct {
	DB      int
	Key     string
	PTTL    int64 // milliseconds; -1 for none
	Payload []byte
}

type dumpWriter struct {
	w   *bufio.Writer
	n   uint64
	buf [binary.MaxVarintLen64]byte
}

func newDumpWriter(w io.Writer) (*dumpWriter, error) {
	bw := bufio.NewWriterSize(w, 1<<20)
	if _, err := bw.WriteString(dumpHeader); err != nil {
		return nil, err
	}
	return &dumpWriter{w: bw}, nil
}

func (d *dumpWriter) uvarint(v uint64) {
	d.w.Write(d.buf[:binary.PutUvarint(d.buf[:], v)])
}

func (d *dumpWriter) Write(e entry) error {
	d.w.WriteByte(tagKey)
	d.uvarint(uint64(e.DB))
	d.uvarint(uint64(len(e.Key)))
	d.w.WriteString(e.Key)
	d.w.Write(d.buf[:binary.PutVarint(d.buf[:], e.PTTL)])
	d.uvarint(uint64(len(e.Payload)))
	_, err := d.w.Write(e.Payload)
	d.n++
	return err
}

func (d *dumpWriter) Close() error {
	d.w.WriteByte(tagEnd)
	d.uvarint(d.n)
	return d.w.Flush()
}

// errTruncated is a dump that ends before its end record.
var errTruncated = errors.New("the file ends early: it is truncated")

// readDump calls fn for every entry of the dump in r, and checks the end
// record. With fn nil it only checks the file.
func readDump(r io.Reader, fn func(entry) error) (int, error) {
	br := bufio.NewReaderSize(r, 1<<20)
	head := make([]byte, len(dumpHeader))
	if _, err := io.ReadFull(br, head); err != nil || string(head) != dumpHeader {
		return 0, errors.New("not a toppcloud Redis dump")
	}
	eof := func(err error) error {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return errTruncated
		}
		return err
	}
	n := 0
	for {
		tag, err := br.ReadByte()
		if err != nil {
			return n, eof(err)
		}
		switch tag {
		case tagEnd:
			count, err := binary.ReadUvarint(br)
			if err != nil {
				return n, eof(err)
			}
			if count != uint64(n) {
				return n, fmt.Errorf("the file holds %d keys, its end says %d", n, count)
			}
			if _, err := br.ReadByte(); err != io.EOF {
				return n, errors.New("data after the end record")
			}
			return n, nil
		case tagKey:
		default:
			return n, fmt.Errorf("bad record tag %#x after %d keys", tag, n)
		}
		db, err := binary.ReadUvarint(br)
		if err != nil {
			return n, eof(err)
		}
		key, err := readField(br)
		if err != nil {
			return n, eof(err)
		}
		pttl, err := binary.ReadVarint(br)
		if err != nil {
			return n, eof(err)
		}
		payload, err := readField(br)
		if err != nil {
			return n, eof(err)
		}
		if db > 1<<16 {
			return n, fmt.Errorf("bad database number %d", db)
		}
		n++
		if fn != nil {
			if err := fn(entry{DB: int(db), Key: string(key), PTTL: pttl, Payload: payload}); err != nil {
				return n, err
			}
		}
	}
}

func readField(br *bufio.Reader) ([]byte, error) {
	l, err := binary.ReadUvarint(br)
	if err != nil {
		return nil, err
	}
	if l > maxField {
		return nil, fmt.Errorf("a field of %d bytes is larger than Redis allows", l)
	}
	b := make([]byte, l)
	_, err = io.ReadFull(br, b)
	return b, err
}
