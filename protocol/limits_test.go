package protocol

import (
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"strings"
	"testing"
)

// payloadOf encodes m without validation, as a hostile peer could.
func payloadOf(t testing.TB, m Message) []byte {
	t.Helper()
	fr, err := Frame(m)
	if err != nil {
		t.Fatal(err)
	}
	_, n := binary.Uvarint(fr)
	return fr[n:]
}

func members(n int, m Member) []Member {
	ms := make([]Member, n)
	for i := range ms {
		ms[i] = m
		ms[i].Alias = fmt.Sprintf("n%d", i)
	}
	return ms
}

// realMessages are messages as meshell's node, mesh and shell build them.
func realMessages() map[string]Message {
	self := Member{Alias: "node-2254", Addr: "10.0.0.4:2254", State: StateAlive, Incarnation: 12,
		Tags: map[string]string{"role": "worker", "slots": "8", "zone": "eu-west-1a"}}
	susp := Member{Alias: "worker1", Addr: "[fd00::7]:2254", State: StateSuspect, Incarnation: 3, Accuser: "worker2"}
	meshTest := Member{Alias: "a", Addr: "127.0.0.1:41234"} // mesh tests introduce themselves without a state
	return map[string]Message{
		"hello before listening": &Hello{Version: Version, Cluster: DefaultCluster, From: Member{Alias: "node-0", State: StateAlive}, ConnID: 1 << 63},
		"hello without state":    &Hello{Version: Version, Cluster: "c", From: meshTest, ConnID: 7},
		"join with empty host":   &Join{Version: Version, Cluster: DefaultCluster, From: Member{Alias: "w", Addr: ":2254", State: StateAlive}},
		"hello-ack refusal": &HelloAck{Version: Version, Cluster: DefaultCluster, From: self,
			Error: `cluster "other" refused: this node belongs to cluster "meshell"; use --cluster meshell to join it`},
		"hello-ack of a full cluster": &HelloAck{Version: Version, Cluster: DefaultCluster, From: self, Members: members(MaxMembersPerFrame, self)},
		"join-ack with seen":          &JoinAck{Version: Version, Cluster: DefaultCluster, From: self, Seen: []Member{susp}},
		"ping with updates":           &Ping{Seq: 99, Updates: members(MaxProbeUpdates, susp)},
		"ack with self":               &Ack{Seq: 99, Digest: 1234, Updates: []Member{self}},
		"ping-req":                    &PingReq{Seq: 1, Target: "worker1", Addr: "[fd00::7]:2254"},
		"ping-req without address":    &PingReq{Seq: 1, Target: "worker1"},
		"gossip of failures":          &Gossip{Updates: members(100, Member{State: StateFailed, Addr: "h:1"})},
		"push-pull reply":             &PushPull{Reply: true, Members: members(MaxMembersPerFrame, susp)},
		"leave":                       &Leave{Alias: "node-2254", Incarnation: 13},
		"control config":              &Control{ID: 4, Op: "config", Key: "probe-interval", Value: "200ms"},
		"control shutdown":            &Control{ID: 5, Op: "shutdown", Now: true},
		"control-ack with status": &ControlAck{ID: 4, Status: &NodeStatus{Alias: "node-2254", Version: "v0.9.1 (go1.26.8 linux/amd64)",
			UptimeMs: 12345, MembersAlive: 3, Slots: 8, Tags: self.Tags,
			Config: map[string]string{"probe-interval": "1s", "probe-timeout": "500ms", "suspicion-mult": "4",
				"indirect-checks": "3", "log-level": "info", "strategy": "least-connections"}}},
		"control-ack error": &ControlAck{ID: 4, Error: `config "x": unknown key; use probe-interval, probe-timeout, suspicion-mult, indirect-checks, log-level or strategy`},
		"job-request":       &JobRequest{ID: 77, Kind: "sha256", Args: []string{"hello world", "", "\x00 any bytes \n"}, Attempt: 1, Timeout: 5e9},
		"job-request many":  &JobRequest{ID: 78, Kind: "echo", Args: make([]string, MaxJobArgs)},
		"job-chunk":         &JobChunk{ID: 77, Seq: 3, Data: strings.Repeat("output line\n", 1000)},
		"job-result":        &JobResult{ID: 77, Status: JobError, Error: "exit status 1\nstderr: ..."},
		"job-result big":    &JobResult{ID: 77, Result: strings.Repeat("r", MaxFrameSize-64)},
		"job-cancel":        &JobCancel{ID: 77},
		"job-request signed run": &JobRequest{ID: 79, Kind: "run", Args: []string{"uname", "-a"}, Timeout: 6e10, Stream: true,
			Auth: &Signature{Target: "n2", Issuer: "alice", Nonce: make([]byte, 16), Expiry: 1 << 60, Sig: make([]byte, 64), Boot: "0123456789abcdef"}},
		"job-chunk stderr": &JobChunk{ID: 79, Seq: 1, Data: "warning\n", Stream: StreamStderr},
		"job-result run": &JobResult{ID: 79, Status: JobError, Error: "exit status 3", Run: &RunOutput{Exit: 3,
			Stdout: strings.Repeat("o", MaxJobOutput), Stderr: strings.Repeat("e", MaxJobOutput)}},
		"job-result refused": &JobResult{ID: 80, Status: JobRefused, Error: "refused: started without --allow-run"},
		"nack":               &Nack{Seq: 2, Refused: true},
		"gossip empty":       &Gossip{},
		"control-ack status": &ControlAck{ID: 1, Status: &NodeStatus{}},
	}
}

func TestRealMessagesRoundTrip(t *testing.T) {
	dec := NewDecoder()
	for name, m := range realMessages() {
		t.Run(name, func(t *testing.T) {
			if err := Validate(m); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			p := payloadOf(t, m)
			got, err := dec.DecodeOnly(p, Only(m.Type()))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, m) {
				t.Fatalf("round trip changed the message:\n got %#v\nwant %#v", got, m)
			}
		})
	}
}

func TestLimitsRefuseOverflow(t *testing.T) {
	m := sampleMember()
	m.State = StateAlive
	cases := []struct {
		name string
		msg  Message
		want string
	}{
		{"hello alias with a newline", &Hello{Cluster: "c", From: Member{Alias: "a\nb"}}, `protocol: hello: alias "a\nb" is not valid: use 1 to 64 letters`},
		{"hello cluster with an escape", &Hello{Cluster: "\x1b[2J", From: m}, `protocol: hello: cluster name "\x1b[2J" is not valid`},
		{"hello over 64 KiB", &Hello{Cluster: "c", From: Member{Alias: "a", Tags: map[string]string{"k": strings.Repeat("v", 70000)}}},
			"protocol: hello of 70024 bytes: frame exceeds limit of 65536 bytes"},
		{"join 1 MB alias", &Join{Cluster: "c", From: Member{Alias: strings.Repeat("a", 60000)}}, `protocol: join: alias "aaaa`},
		{"join unknown state", &Join{Cluster: "c", From: Member{Alias: "a", State: 9}}, "protocol: join: member a: state 9 is not valid"},
		{"hello-ack refusal too long", &HelloAck{Cluster: "c", Error: strings.Repeat("e", 1025)}, "protocol: hello-ack: error of 1025 bytes exceeds the limit of 1024"},
		{"hello-ack 8193 members", &HelloAck{Cluster: "c", From: m, Members: members(8193, m)}, "protocol: hello-ack: array of 8193 elements exceeds the limit of 8192"},
		{"hello-ack fake member", &HelloAck{Cluster: "c", From: m, Members: []Member{{Alias: "x", Addr: "evil host:1", State: StateAlive}}},
			`protocol: hello-ack: member x: address "evil host:1" is not valid`},
		{"join-ack 17 seen", &JoinAck{Cluster: "c", From: m, Seen: members(17, m)}, "protocol: join-ack: 17 seen entries exceed the limit of 16"},
		{"join-ack over 64 KiB", &JoinAck{Cluster: "c", From: m, Error: strings.Repeat("e", 70000)}, "protocol: join-ack of 70049 bytes: frame exceeds limit of 65536 bytes"},
		{"ping 257 updates", &Ping{Updates: members(257, m)}, "protocol: ping: array of 257 elements exceeds the limit of 256"},
		{"ack 257 updates", &Ack{Updates: members(257, m)}, "protocol: ack: array of 257 elements exceeds the limit of 256"},
		{"ping member with 65 tags", &Ping{Updates: []Member{{Alias: "a", State: StateAlive, Tags: manyTags(65)}}}, "protocol: ping: member a: 65 tags exceed the limit of 64"},
		{"gossip 8193 updates", &Gossip{Updates: members(8193, m)}, "protocol: gossip: array of 8193 elements exceeds the limit of 8192"},
		{"gossip unknown state", &Gossip{Updates: []Member{{Alias: "a"}}}, "protocol: gossip: member a: state 0 is not valid"},
		{"push-pull 9000 members", &PushPull{Members: members(9000, m)}, "protocol: push-pull: array of 9000 elements exceeds the limit of 8192"},
		{"ping-req bad target", &PingReq{Target: "a b"}, `protocol: ping-req: target: alias "a b" is not valid`},
		{"ping-req bad address", &PingReq{Target: "a", Addr: "a:0"}, `protocol: ping-req: address "a:0" is not valid`},
		{"leave empty alias", &Leave{}, `protocol: leave: alias "" is not valid`},
		{"control op", &Control{Op: strings.Repeat("o", 33)}, "protocol: control: op of 33 bytes exceeds the limit of 32"},
		{"control key", &Control{Op: "config", Key: strings.Repeat("k", 65)}, "protocol: control: key of 65 bytes exceeds the limit of 64"},
		{"control value", &Control{Op: "config", Value: strings.Repeat("v", 4097)}, "protocol: control: value of 4097 bytes exceeds the limit of 4096"},
		{"control-ack error", &ControlAck{Error: strings.Repeat("e", 4097)}, "protocol: control-ack: error of 4097 bytes exceeds the limit of 4096"},
		{"status alias", &ControlAck{Status: &NodeStatus{Alias: strings.Repeat("a", 257)}}, "protocol: control-ack: status alias of 257 bytes exceeds the limit of 256"},
		{"status tags", &ControlAck{Status: &NodeStatus{Tags: map[string]string{"k": "\n"}}}, `protocol: control-ack: status: tag k: value "\n" is not valid`},
		{"status 65 config entries", &ControlAck{Status: &NodeStatus{Config: manyTags(65)}}, "protocol: control-ack: map of 65 entries exceeds the limit of 64"},
		{"status config value", &ControlAck{Status: &NodeStatus{Config: map[string]string{"k": strings.Repeat("v", 257)}}}, "protocol: control-ack: config value of 257 bytes exceeds the limit of 256"},
		{"job kind with a space", &JobRequest{Kind: "two words"}, `protocol: job-request: job kind "two words" is not valid`},
		{"job kind of 65 bytes", &JobRequest{Kind: strings.Repeat("k", 65)}, "protocol: job-request: job kind"},
		{"job 1025 args", &JobRequest{Kind: "echo", Args: make([]string, 1025)}, "protocol: job-request: array of 1025 elements exceeds the limit of 1024"},
		{"job signature too long", &JobRequest{Kind: "run", Auth: &Signature{Sig: make([]byte, 129)}}, "protocol: job-request: signature of 129 bytes exceeds the limit of 128"},
		{"job boot id too long", &JobRequest{Kind: "run", Auth: &Signature{Boot: strings.Repeat("b", 65)}}, "protocol: job-request: boot id of 65 bytes exceeds the limit of 64"},
		{"job nonce too long", &JobRequest{Kind: "run", Auth: &Signature{Nonce: make([]byte, 33)}}, "protocol: job-request: nonce of 33 bytes exceeds the limit of 32"},
		{"job target with a space", &JobRequest{Kind: "run", Auth: &Signature{Target: "n 2", Issuer: "a"}}, `protocol: job-request: signed target: alias "n 2" is not valid`},
		{"job issuer with an escape", &JobRequest{Kind: "run", Auth: &Signature{Target: "n2", Issuer: "\x1b[2J"}}, `protocol: job-request: alias "\x1b[2J" is not valid`},
		{"job stdout over the cap", &JobResult{Run: &RunOutput{Stdout: strings.Repeat("o", MaxJobOutput+1)}}, "protocol: job-result: stdout of 1049601 bytes exceeds the limit of 1049600"},
		{"job stderr over the cap", &JobResult{Run: &RunOutput{Stderr: strings.Repeat("e", MaxJobOutput+1)}}, "protocol: job-result: stderr of 1049601 bytes exceeds the limit of 1049600"},
	}
	dec := NewDecoder()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := dec.Decode(payloadOf(t, c.msg))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v\nwant it to contain %s", err, c.want)
			}
		})
	}
}

func TestValidateReportsSemanticLimits(t *testing.T) {
	// Validate, for a sender, names the field where the pre-scan can only
	// name the container.
	m := sampleMember()
	m.State = StateAlive
	cases := map[string]struct {
		msg  Message
		want string
	}{
		"push-pull":   {&PushPull{Members: members(9000, m)}, "protocol: push-pull: 9000 members exceed the limit of 8192"},
		"ping":        {&Ping{Updates: members(257, m)}, "protocol: ping: 257 updates exceed the limit of 256"},
		"job-request": {&JobRequest{Kind: "echo", Args: make([]string, 1025)}, "protocol: job-request: 1025 arguments exceed the limit of 1024"},
		"config":      {&ControlAck{Status: &NodeStatus{Config: manyTags(65)}}, "protocol: control-ack: 65 config entries exceed the limit of 64"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			if err := Validate(c.msg); err == nil || err.Error() != c.want {
				t.Fatalf("got %v, want %s", err, c.want)
			}
		})
	}
}

func TestDecodeOnlyChecksTypeFirst(t *testing.T) {
	dec := NewDecoder()
	ping := payloadOf(t, &Ping{Seq: 1})
	hello := payloadOf(t, &Hello{Version: Version, Cluster: "c", From: Member{Alias: "a"}})
	handshakeIn := Only(TypeHello, TypeJoin)
	cases := []struct {
		name    string
		payload []byte
		allowed func(MsgType) bool
		wantErr error
	}{
		{"hello where a handshake opens", hello, handshakeIn, nil},
		{"ping where a handshake opens", ping, handshakeIn, ErrUnexpectedType},
		{"hello after the handshake", hello, AfterHandshake, ErrUnexpectedType},
		{"ping after the handshake", ping, AfterHandshake, nil},
		{"ping anywhere", ping, nil, nil},
		// A garbage body of a refused type is refused for its type.
		{"garbage ping where a handshake opens", []byte{byte(TypePing), 0xc1}, handshakeIn, ErrUnexpectedType},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := dec.DecodeOnly(c.payload, c.allowed)
			if c.wantErr == nil && err != nil || c.wantErr != nil && !errors.Is(err, c.wantErr) {
				t.Fatalf("got %v, want %v", err, c.wantErr)
			}
		})
	}
	for typ := range MsgType(255) {
		if New(typ) != nil && IsHandshake(typ) == AfterHandshake(typ) {
			t.Errorf("%s is both or neither handshake and after-handshake", typ)
		}
	}
}

// allocated returns the bytes allocated while f runs: the least of three
// runs, since the count is process-wide and other goroutines (the fuzzing
// engine's) only add to it.
func allocated(f func()) uint64 {
	least := uint64(1<<64 - 1)
	for range 3 {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		f()
		runtime.ReadMemStats(&after)
		least = min(least, after.TotalAlloc-before.TotalAlloc)
	}
	return least
}

// emptyMembersAck is a HelloAck frame payload of size bytes whose member
// list is empty structs, one byte each: attack (1).
func emptyMembersAck(size int) []byte {
	head := []byte{byte(TypeHelloAck), 0x95, Version, 0xa1, 'c', 0xa0, 0x90, 0xdd, 0, 0, 0, 0}
	n := size - len(head)
	binary.BigEndian.PutUint32(head[len(head)-4:], uint32(n))
	p := make([]byte, size)
	copy(p, head)
	for i := len(head); i < size; i++ {
		p[i] = 0x90
	}
	return p
}

// memberList is a HelloAck payload of n empty-named members, each with a
// tags map of k entries; distinct keys when distinct, else k times "".
func memberList(n, k int, distinct bool) []byte {
	b := []byte{byte(TypeHelloAck), 0x95, Version, 0xa1, 'c', 0xa0, 0x90, 0xdd}
	b = binary.BigEndian.AppendUint32(b, uint32(n))
	for range n {
		b = append(b, 0x95, 0xa0, 0xa0, 0x01, 0x00, 0xde)
		b = binary.BigEndian.AppendUint16(b, uint16(k))
		for j := range k {
			if distinct {
				b = append(b, 0xa3, 'a'+byte(j/676), 'a'+byte(j/26%26), 'a'+byte(j%26), 0xa0)
			} else {
				b = append(b, 0xa0, 0xa0)
			}
		}
	}
	return b
}

func TestHostileShapesAllocateLittle(t *testing.T) {
	deepMap := func() []byte { // one member whose tags map has 1 M entries
		b := []byte{byte(TypeHelloAck), 0x95, Version, 0xa1, 'c', 0xa0, 0x96, 0xa1, 'a', 0xa0, 0x01, 0x00, 0xdf}
		b = binary.BigEndian.AppendUint32(b, 1<<20)
		for range 1 << 20 {
			b = append(b, 0xa0, 0xa0)
		}
		return append(b, 0xa0, 0x90)
	}
	cases := []struct {
		name    string
		payload []byte
		allowed func(MsgType) bool
		want    string
		limit   uint64 // bytes the decode may allocate
	}{
		{"4 MiB hello-ack of 4 M empty members", emptyMembersAck(MaxFrameSize), nil, "exceeds the limit of 8192", 64 << 10},
		{"4 MiB hello-ack where a handshake opens", emptyMembersAck(MaxFrameSize), Only(TypeHello, TypeJoin), "not allowed", 4 << 10},
		{"hello-ack on an established connection", emptyMembersAck(MaxFrameSize), AfterHandshake, "not allowed", 4 << 10},
		{"a million tags on one member", deepMap(), nil, "exceeds the limit of 8192", 64 << 10},
		{"8192 members of 64 tags each", memberList(MaxMembersPerFrame, 64, true), nil, "more than 65600 map entries", 64 << 10},
		{"8192 members of 64 equal keys each", memberList(MaxMembersPerFrame, 64, false), nil, "more than 65600 map entries", 64 << 10},
		// The worst the pre-scan lets through costs the decoder a few MiB:
		// maps are the dearest objects per byte.
		{"1024 members of 64 tags each", memberList(1024, 64, true), nil, `alias "" is not valid`, 8 << 20},
		{"1024 members of 64 equal keys each", memberList(1024, 64, false), nil, `alias "" is not valid`, 8 << 20},
		{"8192 empty members", memberList(MaxMembersPerFrame, 0, false), nil, `alias "" is not valid`, 1536 << 10},
	}
	dec := NewDecoder()
	dec.Decode(payloadOf(t, &Ping{})) // warm the decoder up
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var err error
			got := allocated(func() { _, err = dec.DecodeOnly(c.payload, c.allowed) })
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want it to contain %q", err, c.want)
			}
			t.Logf("frame of %d bytes: %d bytes allocated", len(c.payload), got)
			if got > c.limit {
				t.Fatalf("decoding allocated %d bytes, limit %d", got, c.limit)
			}
		})
	}
}

func TestScan(t *testing.T) {
	lim := bodyLimits{frame: MaxFrameSize, depth: 3, length: 4, objects: 12, entries: 4}
	cases := []struct {
		name string
		body []byte
		want string // "" for accepted
	}{
		{"one int", []byte{0x01}, ""},
		{"nested within depth", []byte{0x91, 0x91, 0x90}, ""},
		{"every scalar kind", []byte{0x94, 0xcc, 1, 0xd1, 0, 1, 0xcb, 0, 0, 0, 0, 0, 0, 0, 0, 0xd9, 1, 'x'}, ""},
		{"map of strings", []byte{0x82, 0xa1, 'a', 0xc0, 0xa1, 'b', 0xc3}, ""},
		{"empty", nil, "body truncated at byte 0"},
		{"trailing byte", []byte{0x01, 0x02}, "1 bytes after the body"},
		{"too deep", []byte{0x91, 0x91, 0x91, 0x90}, "nests deeper than 3"},
		{"array over the cap", []byte{0x95, 1, 2, 3, 4, 5}, "array of 5 elements exceeds the limit of 4"},
		{"map over the cap", []byte{0xde, 0, 5, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5}, "map of 5 entries exceeds the limit of 4"},
		{"too many map entries", []byte{0x92, 0x83, 1, 1, 2, 2, 3, 3, 0x82, 4, 4, 5, 5}, "more than 4 map entries"},
		{"too many objects", []byte{0x93, 0x94, 1, 2, 3, 4, 0x94, 1, 2, 3, 4, 0x91, 1}, "more than 12 msgpack objects"},
		{"string longer than the body", []byte{0xdb, 0xff, 0xff, 0xff, 0xff, 'x'}, "a length of 4294967295 at byte 1 exceeds the 1 bytes left"},
		{"array longer than the body", []byte{0xdd, 0, 0, 0, 4, 0x01}, "a length of 4 at byte 1 exceeds the 1 bytes left"},
		{"elements beyond the body", []byte{0x92, 0x94, 1, 2, 3}, "4 elements at byte 2 need more than the 3 bytes left"},
		{"truncated length", []byte{0xda, 0x01}, "body truncated"},
		{"truncated int", []byte{0xcf, 0, 0}, "a length of 8 at byte 1 exceeds the 2 bytes left"},
		{"never-used byte", []byte{0xc1}, "byte 0xc1 at 0 is not used"},
		{"ext", []byte{0xd4, 1, 1}, "byte 0xd4 at 0 is not used"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := scan(c.body, lim)
			if c.want == "" && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
				t.Fatalf("got %v, want it to contain %q", err, c.want)
			}
		})
	}
	body := payloadOf(t, realMessages()["ping with updates"])[1:]
	lim, _ = limitsOf(TypePing)
	if n := testing.AllocsPerRun(100, func() {
		if err := scan(body, lim); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("scan allocates %v times per run", n)
	}
}

func TestCarriedCountsMembersAndTags(t *testing.T) {
	two := []Member{{Alias: "a", Tags: map[string]string{"k": "v", "r": "w"}}, {Alias: "b"}}
	for _, tc := range []struct {
		m    Message
		want int
	}{
		{&Ping{Updates: two}, 4},
		{&Ack{Updates: two[1:]}, 1},
		{&Gossip{Updates: two}, 4},
		{&PushPull{Members: two}, 4},
		{&PingReq{Target: "a"}, 0},
		{&Leave{Alias: "a"}, 0},
	} {
		if got := Carried(tc.m); got != tc.want {
			t.Errorf("Carried(%T) = %d, want %d", tc.m, got, tc.want)
		}
	}
}
