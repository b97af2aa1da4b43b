package main

// A keyed cluster of real processes: outsiders are refused, keys rotate
// with a fourth node joining on the new key only, and operators sign.

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// runKeygen runs meshell keygen with args and returns its stdout.
func runKeygen(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(binary, append([]string{"keygen"}, args...)...).Output()
	if err != nil {
		t.Fatalf("meshell keygen %v: %v", args, err)
	}
	return strings.TrimSpace(string(out))
}

func writeKeyFile(t *testing.T, dir, name string, keys ...string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(strings.Join(keys, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestKeyedClusterEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	dir := t.TempDir()
	k1 := runKeygen(t)
	files := map[string]string{}
	for _, a := range []string{"n1", "n2", "n3"} {
		files[a] = writeKeyFile(t, dir, a+".key", k1)
	}
	opLine := runKeygen(t, "--operator", "alice", "--out", filepath.Join(dir, "alice.key"))
	ops := writeKeyFile(t, dir, "operators", opLine)

	n1 := startShell(t, "n1", freePort(t), "--key-file", files["n1"], "--operator-key", filepath.Join(dir, "alice.key"))
	n1.run(t, "!start_cluster", 10*time.Second)
	n2 := startShell(t, "n2", freePort(t), "--key-file", files["n2"], "--join", n1.addr, "--keep-going")
	n3 := startShell(t, "n3", freePort(t), "--key-file", files["n3"], "--join", n1.addr, "--operators", ops)
	for _, s := range []*shell{n1, n2, n3} {
		s.run(t, "!wait members 3 30s", 40*time.Second)
	}

	// Outsiders: no key, and a wrong key.
	for name, args := range map[string][]string{
		"no key":    {"--alias", "x1", "-P", "0", "--join", n1.addr},
		"wrong key": {"--alias", "x2", "-P", "0", "--join", n1.addr, "--key-file", writeKeyFile(t, dir, "wrong.key", runKeygen(t))},
	} {
		p := start(t, "", args...)
		if code := p.wait(t, 30*time.Second); code != 1 || !strings.Contains(p.stderr.String(), "refused") {
			t.Fatalf("%s: exit %d, stderr %q: want a refusal", name, code, p.stderr.String())
		}
		if strings.Contains(p.stderr.String(), k1) {
			t.Fatalf("%s: the refusal shows the key", name)
		}
	}

	// Operators: n3 takes changes only when signed; n1 signs, n2 cannot.
	if out := n1.run(t, "!scale n3 1", 20*time.Second); !strings.Contains(out, "n3") {
		t.Fatalf("a signed !scale from the operator's shell: %q %s", out, n1.stderr.String())
	}
	n2.feed(t, "!scale n3 2\n!echo scaled\n")
	n2.waitOutput(t, "scaled", 20*time.Second)
	if !strings.Contains(n2.stderr.String(), "operators") {
		t.Fatalf("an unsigned !scale was not refused: %s", n2.stderr.String())
	}

	// Rotation: install, use, remove; every key file follows.
	k2 := runKeygen(t)
	for _, step := range []string{"!keys install " + k2, "!keys use " + k2, "!keys remove " + k1} {
		before := n1.stderr.String()
		n1.run(t, step, 30*time.Second)
		if after := n1.stderr.String(); after != before {
			t.Fatalf("%s failed: %s", strings.Fields(step)[1], after[len(before):])
		}
	}
	list := n1.run(t, "!keys list", 20*time.Second)
	if !strings.Contains(list, "[3/3]") || strings.Count(list, "\n") != 2 {
		t.Fatalf("!keys list after the rotation:\n%s", list)
	}
	for a, f := range files {
		b, _ := os.ReadFile(f)
		if !strings.Contains(string(b), k2) || strings.Contains(string(b), k1) {
			t.Fatalf("%s's key file after the rotation: %q", a, b)
		}
	}
	n4 := startShell(t, "n4", freePort(t), "--key-file", writeKeyFile(t, dir, "n4.key", k2), "--join", n1.addr)
	n4.run(t, "!wait members 4 30s", 40*time.Second)
	if st := n4.run(t, "!status n2", 20*time.Second); !strings.Contains(st, "tls ") {
		t.Fatalf("!status does not say the cluster is encrypted:\n%s", st)
	}
}
