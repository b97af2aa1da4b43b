package main

import (
	"io"
	"strings"
	"testing"
)

// -P/--port sets the port of --bind's host; a --bind that names another
// port is an error naming both, not one of them silently.
func TestBindAndPortMustAgree(t *testing.T) {
	for _, tc := range []struct {
		args     []string
		bind     string // want, or "" for an error
		wantErrs []string
	}{
		{args: []string{"-P", "7001"}, bind: "127.0.0.1:7001"},
		{args: []string{"--bind", "127.0.0.1:7001"}, bind: "127.0.0.1:7001"},
		{args: []string{"--bind", "127.0.0.1:7001", "-P", "7001"}, bind: "127.0.0.1:7001"},
		{args: []string{"--bind", "127.0.0.1:7000", "-P", "7001"}, wantErrs: []string{"--bind 127.0.0.1:7000 and -P 7001 disagree", "drop -P"}},
		{args: []string{"--port", "7001", "--bind", "127.0.0.1:0"}, wantErrs: []string{"--bind 127.0.0.1:0 and --port 7001 disagree", "drop --port"}},
	} {
		o, err := parseFlags(tc.args, io.Discard)
		if err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		cfg, _, err := o.nodeConfig(io.Discard)
		switch {
		case tc.bind != "" && (err != nil || cfg.Bind != tc.bind):
			t.Errorf("%v: bind %q, err %v; want %s", tc.args, cfg.Bind, err, tc.bind)
		case tc.bind == "" && err == nil:
			t.Errorf("%v: accepted, bind %s", tc.args, cfg.Bind)
		case tc.bind == "":
			for _, w := range tc.wantErrs {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%v: %q lacks %q", tc.args, err, w)
				}
			}
		}
	}
}

// A key given twice in --tags is refused, naming it, not one value dropped.
func TestTagsFlagRefusesAKeyTwice(t *testing.T) {
	_, err := parseTags("zone=x,role=worker,zone=y")
	if want := "--tags: tag zone given twice (zone=x and zone=y): give each key once"; err == nil || err.Error() != want {
		t.Errorf("err %v, want %q", err, want)
	}
}
