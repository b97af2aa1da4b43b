package keyring

import (
	"context"
	"io"
	"net"
	"testing"
)

// BenchmarkHandshake measures a full TLS 1.3 handshake, both sides, with
// mutual ed25519 certificates. "loopback" includes the TCP connect and
// accept; "pipe" is the handshake alone over net.Pipe.
func BenchmarkHandshake(b *testing.B) {
	k, err := Generate()
	if err != nil {
		b.Fatal(err)
	}
	srv, cli := newRing(b, k), newRing(b, k)
	ctx := context.Background()
	run := func(b *testing.B, pair func() (net.Conn, net.Conn)) {
		// Leaves are issued on first use; keep that out of the figure.
		dc, sc := pair()
		shake(b, ctx, srv, cli, dc, sc)
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			dc, sc := pair()
			shake(b, ctx, srv, cli, dc, sc)
		}
	}
	b.Run("loopback", func(b *testing.B) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		defer ln.Close()
		run(b, func() (net.Conn, net.Conn) {
			dc, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			sc, err := ln.Accept()
			if err != nil {
				b.Fatal(err)
			}
			return dc, sc
		})
	})
	b.Run("pipe", func(b *testing.B) { run(b, net.Pipe) })
}

func shake(b *testing.B, ctx context.Context, srv, cli *Keyring, dc, sc net.Conn) {
	errc := make(chan error, 1)
	go func() {
		_, err := srv.Server(ctx, sc, "b")
		errc <- err
	}()
	if _, err := cli.Client(ctx, dc, "a"); err != nil {
		b.Fatal(err)
	}
	if err := <-errc; err != nil {
		b.Fatal(err)
	}
	dc.Close()
	sc.Close()
}

// BenchmarkRecord measures one 100-byte message written on one end of an
// established loopback connection and read on the other: "tls" through this
// package, "tcp" the same on the bare socket, for the difference.
func BenchmarkRecord(b *testing.B) {
	k, err := Generate()
	if err != nil {
		b.Fatal(err)
	}
	srv, cli := newRing(b, k), newRing(b, k)
	run := func(b *testing.B, w io.Writer, r io.Reader) {
		msg := make([]byte, 100)
		buf := make([]byte, 100)
		b.SetBytes(int64(len(msg)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := w.Write(msg); err != nil {
				b.Fatal(err)
			}
			if _, err := io.ReadFull(r, buf); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("tls", func(b *testing.B) {
		dc, sc := tcpPair(b)
		dc.SetDeadline(noDeadline)
		sc.SetDeadline(noDeadline)
		ch := accept(srv, sc, "b")
		c, err := cli.Client(context.Background(), dc, "a")
		if err != nil {
			b.Fatal(err)
		}
		r := <-ch
		if r.err != nil {
			b.Fatal(r.err)
		}
		run(b, c, r.c)
	})
	b.Run("tcp", func(b *testing.B) {
		dc, sc := tcpPair(b)
		dc.SetDeadline(noDeadline)
		sc.SetDeadline(noDeadline)
		run(b, dc, sc)
	})
}
