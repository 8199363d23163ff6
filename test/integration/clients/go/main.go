// weir-go-client: sends events to weir with the official Go logger,
// github.com/fluent/fluent-logger-golang (what Docker's fluentd log driver
// uses), as an integration-test client.
//
// Usage: weir-go-client SPEC.json
//
// SPEC: {"port": 24224, "tag_prefix": "go", "sub_second": false,
//        "request_ack": false, "async": false,
//        "events": [{"label": "a", "sec": 1700000000, "nsec": 5, "record": {...}}]}
// Integers in records are sent as Go int64 (msgp writes the smallest signed
// encoding: 200 as int16, 1700000000 as int32), floats as float64.
// Prints {"ok": true, "sent": N} on the last line.
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/fluent/fluent-logger-golang/fluent"
)

type event struct {
	Label  string          `json:"label"`
	Sec    int64           `json:"sec"`
	Nsec   int64           `json:"nsec"`
	Record json.RawMessage `json:"record"`
}

type spec struct {
	Port       int     `json:"port"`
	TagPrefix  string  `json:"tag_prefix"`
	SubSecond  bool    `json:"sub_second"`
	RequestAck bool    `json:"request_ack"`
	Async      bool    `json:"async"`
	Events     []event `json:"events"`
}

// native turns json.Number into int64 where it is an integer, float64 otherwise.
func native(v interface{}) interface{} {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		f, _ := x.Float64()
		return f
	case map[string]interface{}:
		for k, e := range x {
			x[k] = native(e)
		}
		return x
	case []interface{}:
		for i, e := range x {
			x[i] = native(e)
		}
		return x
	}
	return v
}

func fail(format string, a ...interface{}) {
	fmt.Fprintf(os.Stderr, format+"\n", a...)
	os.Exit(1)
}

func main() {
	if len(os.Args) != 2 {
		fail("usage: weir-go-client SPEC.json")
	}
	raw, err := os.ReadFile(os.Args[1])
	if err != nil {
		fail("read spec: %v", err)
	}
	var s spec
	if err := json.Unmarshal(raw, &s); err != nil {
		fail("parse spec: %v", err)
	}
	logger, err := fluent.New(fluent.Config{
		FluentHost:         "127.0.0.1",
		FluentPort:         s.Port,
		TagPrefix:          s.TagPrefix,
		SubSecondPrecision: s.SubSecond,
		RequestAck:         s.RequestAck,
		Async:              s.Async,
		Timeout:            10 * time.Second,
		WriteTimeout:       10 * time.Second,
		MaxRetry:           3,
	})
	if err != nil {
		fail("fluent.New: %v", err)
	}
	sent := 0
	for _, e := range s.Events {
		d := json.NewDecoder(bytes.NewReader(e.Record))
		d.UseNumber()
		var rec map[string]interface{}
		if err := d.Decode(&rec); err != nil {
			fail("record %d: %v", sent, err)
		}
		native(rec)
		if err := logger.PostWithTime(e.Label, time.Unix(e.Sec, e.Nsec), rec); err != nil {
			fail("PostWithTime %d: %v", sent, err)
		}
		sent++
	}
	// Close waits for the async queue to drain (ForceStopAsyncSend is false).
	if err := logger.Close(); err != nil {
		fail("Close: %v", err)
	}
	out, _ := json.Marshal(map[string]interface{}{"ok": true, "sent": sent})
	fmt.Println(string(out))
}
