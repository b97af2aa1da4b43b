package protocol

import (
	"fmt"
	"math"
	"strings"
	"testing"
)

func TestValidAlias(t *testing.T) {
	cases := []struct {
		name, alias string
		ok          bool
	}{
		{"short name", "n1", true},
		{"dots dashes underscores", "node-3.zone_a", true},
		{"64 bytes", strings.Repeat("a", 64), true},
		{"65 bytes", strings.Repeat("a", 65), false},
		{"empty", "", false},
		{"space", "a b", false},
		{"newline", "a\nb", false},
		{"escape sequence", "\x1b[31mred", false},
		{"NUL", "a\x00", false},
		{"DEL", "a\x7f", false},
		{"unicode letter", "nœud", false},
		{"invalid utf-8", "a\xff", false},
		{"slash", "a/b", false},
		{"colon", "a:b", false},
		{"comma", "a,b", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := ValidAlias(c.alias)
			if (err == nil) != c.ok {
				t.Fatalf("ValidAlias(%q) = %v, want ok=%v", c.alias, err, c.ok)
			}
			if err != nil && strings.ContainsAny(err.Error(), "\x00\x1b\n\x7f") {
				t.Fatalf("error carries a control byte unescaped: %q", err)
			}
			if cerr := ValidCluster(c.alias); (cerr == nil) != c.ok {
				t.Fatalf("ValidCluster(%q) = %v, want ok=%v", c.alias, cerr, c.ok)
			}
		})
	}
}

func TestNameErrorText(t *testing.T) {
	cases := []struct {
		name string
		err  error
		want string
	}{
		{"alias", ValidAlias("a b"), `alias "a b" is not valid: use 1 to 64 letters, digits, '.', '_' or '-'`},
		{"alias with escape", ValidAlias("\x1b]0;x\a"), `alias "\x1b]0;x\a" is not valid`},
		{"huge alias is cut", ValidAlias(strings.Repeat("x", 1<<20)), `... (1048576 bytes) is not valid`},
		{"cluster", ValidCluster(""), `cluster name "" is not valid`},
		{"kind", ValidKind("two words"), `job kind "two words" is not valid`},
		{"tag key", ValidTag("a=b", "v"), `tag key "a=b" is not valid`},
		{"tag value", ValidTag("k", "a,b"), `tag k: value "a,b" is not valid`},
		{"tag count", ValidTags(manyTags(65)), `65 tags exceed the limit of 64`},
		{"address", ValidAddr("nope"), `address "nope" is not valid: use HOST:PORT`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.err == nil || !strings.Contains(c.err.Error(), c.want) {
				t.Fatalf("got %v, want it to contain %s", c.err, c.want)
			}
			if len(c.err.Error()) > 300 {
				t.Fatalf("error of %d bytes", len(c.err.Error()))
			}
		})
	}
}

func manyTags(n int) map[string]string {
	tags := map[string]string{}
	for i := range n {
		tags[fmt.Sprintf("k%d", i)] = "v"
	}
	return tags
}

func TestValidTag(t *testing.T) {
	cases := []struct {
		name, k, v string
		ok         bool
	}{
		{"role", "role", "worker", true},
		{"empty value", "flag", "", true},
		{"path-like key and url-ish value", "example.com/zone", "user@host:8080/a+b", true},
		{"64-byte key", strings.Repeat("k", 64), "v", true},
		{"65-byte key", strings.Repeat("k", 65), "v", false},
		{"256-byte value", "k", strings.Repeat("v", 256), true},
		{"257-byte value", "k", strings.Repeat("v", 257), false},
		{"empty key", "", "v", false},
		{"equals in key", "a=b", "v", false},
		{"equals in value", "k", "a=b", false},
		{"comma in value", "k", "a,b", false},
		{"space in value", "k", "a b", false},
		{"quote in value", "k", `"x"`, false},
		{"newline in value", "k", "a\nb", false},
		{"escape in value", "k", "\x1b[2J", false},
		{"unicode value", "k", "zürich", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := ValidTag(c.k, c.v); (err == nil) != c.ok {
				t.Fatalf("ValidTag(%q, %q) = %v, want ok=%v", c.k, c.v, err, c.ok)
			}
		})
	}
	t.Run("64 tags", func(t *testing.T) {
		if err := ValidTags(manyTags(64)); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("nil tags", func(t *testing.T) {
		if err := ValidTags(nil); err != nil {
			t.Fatal(err)
		}
	})
}

func TestValidAddr(t *testing.T) {
	cases := []struct {
		name, addr string
		ok         bool
	}{
		{"ipv4", "127.0.0.1:7001", true},
		{"ipv6", "[::1]:7001", true},
		{"ipv6 with zone", "[fe80::1%eth0]:7001", true},
		{"empty host", ":7001", true},
		{"unspecified", "0.0.0.0:2254", true},
		{"dns name", "node-1.example.com:2254", true},
		{"port 65535", "h:65535", true},
		{"port 0", "h:0", false},
		{"port 65536", "h:65536", false},
		{"port name", "h:http", false},
		{"signed port", "h:+80", false},
		{"no port", "127.0.0.1", false},
		{"empty", "", false},
		{"ipv6 without brackets", "::1:80", false},
		{"underscore host", "a_b:80", false},
		{"space in host", "a b:80", false},
		{"escape in host", "\x1b[31m:80", false},
		{"escape in zone", "[fe80::1%\x1b]:80", false},
		{"unicode host", "hôte:80", false},
		{"253-byte host", strings.Repeat("a", 253) + ":80", true},
		{"254-byte host", strings.Repeat("a", 254) + ":80", false},
		{"301 bytes", "[fe80::1%" + strings.Repeat("a", 288) + "]:80", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := ValidAddr(c.addr); (err == nil) != c.ok {
				t.Fatalf("ValidAddr(%q) = %v, want ok=%v", c.addr, err, c.ok)
			}
		})
	}
}

func TestMemberValidate(t *testing.T) {
	good := Member{Alias: "n1", Addr: "127.0.0.1:7001", State: StateAlive, Incarnation: 3, Tags: map[string]string{"role": "worker"}}
	cases := []struct {
		name string
		edit func(*Member)
		want string // "" for valid
	}{
		{"as gossiped", func(*Member) {}, ""},
		{"no address", func(m *Member) { m.Addr = "" }, ""},
		{"suspect with accuser", func(m *Member) { m.State, m.Accuser = StateSuspect, "n2" }, ""},
		{"left", func(m *Member) { m.State = StateLeft }, ""},
		{"bad alias", func(m *Member) { m.Alias = "a\nb" }, `alias "a\nb" is not valid`},
		{"bad address", func(m *Member) { m.Addr = "x" }, `member n1: address "x" is not valid`},
		{"unknown state", func(m *Member) { m.State = StateUnknown }, "member n1: state 0 is not valid"},
		{"state past left", func(m *Member) { m.State = StateLeft + 1 }, "member n1: state 5 is not valid"},
		{"too many tags", func(m *Member) { m.Tags = manyTags(65) }, "member n1: 65 tags exceed the limit of 64"},
		{"bad tag", func(m *Member) { m.Tags = map[string]string{"k": "a b"} }, `member n1: tag k: value "a b" is not valid`},
		{"bad accuser", func(m *Member) { m.Accuser = "x y" }, `member n1: accuser: alias "x y" is not valid`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := good
			c.edit(&m)
			err := m.Validate()
			if c.want == "" && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
				t.Fatalf("got %v, want it to contain %q", err, c.want)
			}
		})
	}
}

// A member's tags are bounded in bytes, so that a full table of 4096
// members (the default --max-members) with the longest aliases, IPv6
// addresses and tags at the bound goes in one PushPull frame.
func TestTagBytesBoundAndAFullTableFits(t *testing.T) {
	tags := map[string]string{}
	for i := 0; len(tags) < MaxTags; i++ {
		tags[fmt.Sprintf("k%02d", i)] = strings.Repeat("v", MaxTagBytes/MaxTags-3)
	}
	if err := ValidTags(tags); err != nil {
		t.Fatalf("tags of %d bytes refused: %v", MaxTagBytes, err)
	}
	tags["k00"] += "v"
	if err := ValidTags(tags); err == nil || !strings.Contains(err.Error(), "exceed the limit of 512") {
		t.Fatalf("tags over %d bytes: %v", MaxTagBytes, err)
	}
	tags["k00"] = tags["k00"][1:]
	pp := &PushPull{}
	for i := range 4096 {
		alias := fmt.Sprintf("%s%04d", strings.Repeat("a", MaxAliasLen-4), i)
		pp.Members = append(pp.Members, Member{Alias: alias, Addr: "[fd00:1234:5678:9abc:def0:1234:5678:9abc]:65535", State: StateSuspect, Incarnation: math.MaxUint64, Tags: tags})
	}
	b, err := Frame(pp)
	if err != nil || len(b) > MaxFrameSize {
		t.Fatalf("a full table of 4096 members is %d bytes (%v); a frame holds %d", len(b), err, MaxFrameSize)
	}
}
