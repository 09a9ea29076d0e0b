package protocol

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
)

func TestStream_RoundTrip(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	st := w.Start("install packages")
	st.Progress("caddy")
	w.Log("stderr", "E: something")
	st.Done(true, "3 installed")
	if err := w.OK(map[string]int{"n": 3}); err != nil {
		t.Fatal(err)
	}
	if err := w.Log("stdout", "late"); err == nil {
		t.Fatal("log after result: want error")
	}
	var events []Event
	var logs []Log
	res, err := Read(&buf, Handler{Event: func(e Event) { events = append(events, e) }, Log: func(l Log) { logs = append(logs, l) }})
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK || string(res.Data) != `{"n":3}` {
		t.Errorf("result = %+v", res)
	}
	if len(events) != 3 || events[0].Status != StepStart || events[2].Status != StepDone || !events[2].Changed {
		t.Errorf("events = %+v", events)
	}
	if len(logs) != 1 || logs[0].Text != "E: something" {
		t.Errorf("logs = %+v", logs)
	}
}

func TestRead_Errors(t *testing.T) {
	tests := []struct {
		name, in string
		want     string
	}{
		{"empty", "", "unexpected EOF"},
		{"no result", `{"type":"log","log":{"stream":"agent","text":"x"}}` + "\n", "unexpected EOF"},
		{"garbage", "bash: toppcloud: command not found\n", "unreadable line"},
		{"unknown type", `{"type":"weird"}` + "\n", "unknown message type"},
		{"result without body", `{"type":"result"}` + "\n", "without a result"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Read(strings.NewReader(tt.in), Handler{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want containing %q", err, tt.want)
			}
		})
	}
}

func TestRequest_RoundTripAndStreamAfter(t *testing.T) {
	type args struct {
		Name string `json:"name"`
	}
	var buf bytes.Buffer
	if err := EncodeRequest(&buf, Request{Protocol: 1, Op: "setup"}, args{Name: "x"}); err != nil {
		t.Fatal(err)
	}
	buf.WriteString("BINARY\x00DATA")
	var got args
	req, rest, err := DecodeRequest(&buf, "setup", &got)
	if err != nil {
		t.Fatal(err)
	}
	if req.Protocol != 1 || got.Name != "x" {
		t.Errorf("req=%+v args=%+v", req, got)
	}
	tail, _ := io.ReadAll(rest)
	if string(tail) != "BINARY\x00DATA" {
		t.Errorf("stream after request = %q", tail)
	}
}

func TestDecodeRequest_Refuses(t *testing.T) {
	type args struct {
		Name string `json:"name"`
	}
	tests := []struct {
		name, in, op string
	}{
		{"wrong op", `{"protocol":1,"op":"update"}` + "\n", "setup"},
		{"unknown field", `{"protocol":1,"op":"setup","args":{"name":"x","evil":1}}` + "\n", "setup"},
		{"not json", "hello\n", "setup"},
		{"empty", "", "setup"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var a args
			if _, _, err := DecodeRequest(strings.NewReader(tt.in), tt.op, &a); err == nil {
				t.Fatal("want error")
			}
		})
	}
}

func TestFail_ErrorSurvivesTheWire(t *testing.T) {
	// What a client tests for (errors.As to *Error, then Code) must hold
	// for an error the agent sent: code, message and tail intact, and
	// still found once the client wraps it with context.
	var buf bytes.Buffer
	w := NewWriter(&buf)
	sent := &Error{Code: CodeLocked, Message: "app blog is locked by update", Tail: []string{"held since 12:00"}}
	if err := w.Fail(sent); err != nil {
		t.Fatal(err)
	}
	res, err := Read(&buf, Handler{})
	if err != nil {
		t.Fatal(err)
	}
	if res.OK || res.Error == nil {
		t.Fatalf("result = %+v, want a failure", res)
	}
	wrapped := fmt.Errorf("update blog: %w", res.Error)
	var pe *Error
	if !errors.As(wrapped, &pe) {
		t.Fatalf("errors.As(%v) found no *Error", wrapped)
	}
	if pe.Code != sent.Code || pe.Message != sent.Message || !reflect.DeepEqual(pe.Tail, sent.Tail) {
		t.Errorf("received %+v, want %+v", pe, sent)
	}
	if got := wrapped.Error(); got != "update blog: app blog is locked by update" {
		t.Errorf("message = %q", got)
	}
}

func TestRead_LeavesWhatFollowsTheResult(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	w.Log(StreamAgent, "making the backup")
	w.OK(map[string]int{"bytes": 5})
	buf.WriteString("\x00binary\ndata\xff")
	br := bufio.NewReaderSize(&buf, 16)
	var logs []string
	res, err := Read(br, Handler{Log: func(l Log) { logs = append(logs, l.Text) }})
	if err != nil || !res.OK || len(logs) != 1 {
		t.Fatalf("read: %v %+v %q", err, res, logs)
	}
	rest, _ := io.ReadAll(br)
	if string(rest) != "\x00binary\ndata\xff" {
		t.Errorf("after the result: %q", rest)
	}
}
