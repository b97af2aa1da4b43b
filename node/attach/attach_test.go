package attach

import (
	"encoding/binary"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"meshell/protocol"
)

func TestListenMakesAPrivateSocketAndRemovesItOnClose(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "meshell")
	path := filepath.Join(dir, "n1.sock")
	ln, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]os.FileMode{dir: 0o700, path: 0o600} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s has mode %04o, want %04o", p, fi.Mode().Perm(), want)
		}
	}
	if !Live(path) {
		t.Error("nothing answers on the socket")
	}
	ln.Close()
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the socket is still there after Close: %v", err)
	}
}

func TestListenRefusesALiveSocketAndReplacesAStaleOne(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s", "n1.sock")
	ln, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(path); !errors.Is(err, ErrInUse) {
		t.Fatalf("a second Listen on a live socket: %v, want ErrInUse", err)
	}
	ln.SetUnlinkOnClose(false) // as a node killed with -9 leaves it
	ln.Close()
	if _, err := os.Stat(path); err != nil {
		t.Fatal(err)
	}
	found, err := List(filepath.Dir(path))
	if err != nil || len(found) != 1 || found[0].Name != "n1" || found[0].Live {
		t.Fatalf("List of a stale socket: %+v, %v", found, err)
	}
	ln, err = Listen(path)
	if err != nil {
		t.Fatalf("a stale socket was not replaced: %v", err)
	}
	ln.Close()
}

func TestListenRefusesUnsafePlaces(t *testing.T) {
	open := filepath.Join(t.TempDir(), "open")
	os.Mkdir(open, 0o755)
	os.Chmod(open, 0o755)
	if _, err := Listen(filepath.Join(open, "n1.sock")); err == nil || !strings.Contains(err.Error(), "open to other users: chmod 700") {
		t.Errorf("a directory others may enter: %v", err)
	}
	dir := filepath.Join(t.TempDir(), "d")
	os.Mkdir(dir, 0o700)
	file := filepath.Join(dir, "n1.sock")
	os.WriteFile(file, []byte("x"), 0o600)
	if _, err := Listen(file); err == nil || !strings.Contains(err.Error(), "is not a socket") {
		t.Errorf("a plain file at the socket's path: %v", err)
	}
}

func pair(t *testing.T) (*conn, net.Conn) {
	a, b := net.Pipe()
	k := newConn(a)
	t.Cleanup(func() { k.Close(); b.Close() })
	return k, b
}

func TestConnSplitsLongOutputAndRefusesOversizedFrames(t *testing.T) {
	a, b := net.Pipe()
	ka, kb := newConn(a), newConn(b)
	defer ka.Close()
	defer kb.Close()
	long := strings.Repeat("x", protocol.MaxLocalData+10)
	go ka.Send(&protocol.Local{Op: protocol.LocalStdout, Data: long})
	var got strings.Builder
	for got.Len() < len(long) {
		m, err := kb.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if m.Op != protocol.LocalStdout || len(m.Data) > protocol.MaxLocalData {
			t.Fatalf("a piece of op %d and %d bytes", m.Op, len(m.Data))
		}
		got.WriteString(m.Data)
	}
	if got.String() != long {
		t.Fatal("the pieces do not add up to the output")
	}

	k, raw := pair(t)
	go raw.Write(binary.AppendUvarint(nil, protocol.MaxLocalFrame+1<<20)) // a length alone, far past the limit
	if _, err := k.Recv(); err == nil || !errors.Is(err, protocol.ErrFrameTooLarge) {
		t.Fatalf("an oversized length prefix: %v", err)
	}
}

func TestConnRefusesFramesThatAreNotLocal(t *testing.T) {
	for name, m := range map[string]protocol.Message{
		"a cluster message": &protocol.Leave{Alias: "n1"},
		"an unknown op":     &protocol.Local{Op: 200},
	} {
		t.Run(name, func(t *testing.T) {
			k, raw := pair(t)
			f, err := protocol.Frame(m)
			if err != nil {
				t.Fatal(err)
			}
			go raw.Write(f)
			if _, err := k.Recv(); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}
