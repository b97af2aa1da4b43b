package protocol

import (
	"testing"

	"github.com/hashicorp/go-msgpack/v2/codec"
)

func TestNegotiate(t *testing.T) {
	cases := []struct {
		name string
		a, b Versions
		want uint16
		ok   bool
	}{
		{"equal", Versions{Min: 1, Max: 2}, Versions{Min: 1, Max: 2}, 2, true},
		{"one inside the other", Versions{Min: 1, Max: 5}, Versions{Min: 2, Max: 3}, 3, true},
		{"overlap at one end", Versions{Min: 1, Max: 2}, Versions{Min: 2, Max: 4}, 2, true},
		{"single versions alike", Versions{Min: 1, Max: 1}, Versions{Min: 1, Max: 1}, 1, true},
		{"disjoint, a older", Versions{Min: 1, Max: 1}, Versions{Min: 2, Max: 3}, 0, false},
		{"disjoint, a newer", Versions{Min: 4, Max: 6}, Versions{Min: 1, Max: 3}, 0, false},
		{"zero range", Versions{}, Versions{Min: 1, Max: 2}, 0, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, order := range [][2]Versions{{tc.a, tc.b}, {tc.b, tc.a}} {
				got, ok := Negotiate(order[0], order[1])
				if ok != tc.ok || (ok && got != tc.want) {
					t.Errorf("Negotiate(%s, %s) = %d, %v; want %d, %v", order[0], order[1], got, ok, tc.want, tc.ok)
				}
			}
		})
	}
}

// helloV1 is Hello as protocol 1 laid it out, before the version range.
type helloV1 struct {
	Version uint16
	Cluster string
	From    Member
	ConnID  uint64
}

// A node of protocol 1 and one of protocol 2 read each other's Hello: the
// older one sees the legacy version it checks (the newer node's minimum),
// the newer one reads the older's as the range [1, 1].
func TestHelloAcrossProtocolOneAndTwo(t *testing.T) {
	newer := NewHello(Versions{Min: 1, Max: 2}, "c", Member{Alias: "n2", Addr: "127.0.0.1:2"}, 9)
	b, err := Frame(newer)
	if err != nil {
		t.Fatal(err)
	}
	var old helloV1
	if err := codec.NewDecoderBytes(b[2:], handle).Decode(&old); err != nil {
		t.Fatalf("a protocol 1 node cannot decode a protocol 2 hello: %v", err)
	}
	if old.Version != 1 || old.From.Alias != "n2" || old.ConnID != 9 {
		t.Errorf("protocol 1 reads %+v", old)
	}

	var body []byte
	codec.NewEncoderBytes(&body, handle).Encode(&helloV1{Version: 1, Cluster: "c", From: Member{Alias: "n1", Addr: "127.0.0.1:1"}, ConnID: 3})
	m, err := NewDecoder().DecodeOnly(append([]byte{byte(TypeHello)}, body...), Only(TypeHello))
	if err != nil {
		t.Fatalf("a protocol 1 hello is refused: %v", err)
	}
	if got := m.(*Hello).Versions(); got != (Versions{1, 1, 1}) {
		t.Errorf("a protocol 1 hello reads as %+v, want [1, 1] at 1", got)
	}
}

func TestHandshakeVersionRangesAreValidated(t *testing.T) {
	from := Member{Alias: "n1", Addr: "127.0.0.1:1"}
	bad := map[string]Message{
		"min above max":    &Hello{Version: 1, Cluster: "c", From: from, MinVersion: 3, MaxVersion: 2, CurVersion: 2},
		"min zero":         &Join{Version: 1, Cluster: "c", From: from, MinVersion: 0, MaxVersion: 2, CurVersion: 2},
		"current outside":  &Hello{Version: 1, Cluster: "c", From: from, MinVersion: 1, MaxVersion: 2, CurVersion: 7},
		"ack range upside": &JoinAck{Version: 1, Cluster: "c", From: from, MinVersion: 5, MaxVersion: 1},
	}
	for name, m := range bad {
		if err := Validate(m); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if err := Validate(NewJoin(Supported(), "c", from, 1)); err != nil {
		t.Errorf("this build's own join refused: %v", err)
	}
}

// signatureV2 is Signature as releases before the boot id had it.
type signatureV2 struct {
	Target, Issuer string
	Nonce          []byte
	Expiry         int64
	Sig            []byte
}

type controlV2 struct {
	ID         uint64
	Op         string
	N          int64
	Key, Value string
	Now        bool
	Auth       *signatureV2
}

// An older node skips the boot id of a signed request (it is sent one only
// if it gossips a boot id, which it does not); a request from an older
// signer reads with none, which the operator package refuses.
func TestSignatureBootAcrossReleases(t *testing.T) {
	sig := Signature{Target: "n2", Issuer: "alice", Nonce: make([]byte, 16), Expiry: 7, Sig: make([]byte, 64)}
	withBoot := sig
	withBoot.Boot = "0123456789abcdef"
	b, err := Frame(&Control{ID: 1, Op: "scale", N: 2, Auth: &withBoot})
	if err != nil {
		t.Fatal(err)
	}
	var old controlV2
	if err := codec.NewDecoderBytes(b[2:], handle).Decode(&old); err != nil {
		t.Fatalf("an older node cannot decode a signed control with a boot id: %v", err)
	}
	if old.Auth == nil || old.Auth.Target != "n2" || old.Auth.Expiry != 7 || old.N != 2 {
		t.Errorf("an older node reads %+v", old)
	}

	var body []byte
	codec.NewEncoderBytes(&body, handle).Encode(&controlV2{ID: 1, Op: "scale", N: 2,
		Auth: &signatureV2{Target: sig.Target, Issuer: sig.Issuer, Nonce: sig.Nonce, Expiry: sig.Expiry, Sig: sig.Sig}})
	m, err := NewDecoder().DecodeOnly(append([]byte{byte(TypeControl)}, body...), Only(TypeControl))
	if err != nil {
		t.Fatalf("an older signer's control is refused by the codec: %v", err)
	}
	if a := m.(*Control).Auth; a == nil || a.Boot != "" || a.Issuer != "alice" {
		t.Errorf("an older signer's signature reads as %+v", a)
	}
}
