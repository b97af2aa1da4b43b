package protocol

import (
	"errors"
	"fmt"
)

// Message limits, checked on every decoded message. A sender that wants its
// message accepted checks it with Validate first.
const (
	MaxHandshakeFrame  = 64 << 10 // Hello, Join and JoinAck frames; a HelloAck may use MaxFrameSize
	MaxMembersPerFrame = 8192     // Gossip updates, PushPull and HelloAck members
	MaxTagsPerFrame    = 65536    // tags of all those members together: 8 each on average at the most members
	MaxProbeUpdates    = 256      // updates piggybacked on a Ping or an Ack
	MaxSeen            = 16       // JoinAck.Seen entries
	MaxErrorLen        = 1024     // HelloAck and JoinAck refusal text
	MaxOpLen           = 32       // Control.Op
	MaxKeyLen          = 64       // Control.Key
	MaxValueLen        = 4096     // Control.Value
	MaxAckErrorLen     = 4096     // ControlAck.Error
	MaxStatusString    = 256      // NodeStatus.Alias and .Version
	MaxConfigEntries   = 64       // NodeStatus.Config entries
	MaxConfigKeyLen    = 64       // NodeStatus.Config key
	MaxConfigValueLen  = 256      // NodeStatus.Config value
	MaxJobArgs         = 1024     // JobRequest.Args entries
	MaxKeyIDs          = 64       // NodeStatus.KeyIDs entries, each at most MaxStatusString
	MaxNonceLen        = 32       // Control.Nonce
	MaxSigLen          = 128      // Control.Sig and JobRequest.Sig
	MaxBootLen         = 64       // Signature.Boot
)

// MaxRunOutput is the most of a command's stdout, and of its stderr, a
// worker keeps (jobs.RunConfig.MaxOutput at its default and its bound).
const MaxRunOutput = 1 << 20

// MaxJobOutput bounds JobResult.Stdout and .Stderr, and what a dispatcher
// takes of a command's streamed stdout and stderr: a worker's capture of
// MaxRunOutput and its truncation marker.
const MaxJobOutput = MaxRunOutput + 1024

// A kind's streamed chunks (StreamJob) per attempt: a worker's emit refuses
// more, and a dispatcher ends a job whose worker sends more.
const (
	MaxJobChunks = 100_000  // chunks
	MaxJobStream = 16 << 20 // bytes of their data
)

// Weight is about how many bytes m takes to hold and to send: its strings
// for the messages that carry data (jobs), 128 a member for those that carry
// members, 64 otherwise. Outbound queues are bounded by it.
func Weight(m Message) int {
	const base, member = 64, 128
	switch m := m.(type) {
	case *JobRequest:
		n := base + len(m.Kind)
		for _, a := range m.Args {
			n += len(a) + 8
		}
		return n
	case *JobResult:
		n := base + len(m.Result) + len(m.Error)
		if m.Run != nil {
			n += len(m.Run.Stdout) + len(m.Run.Stderr)
		}
		return n
	case *JobChunk:
		return base + len(m.Data)
	case *Gossip:
		return base + member*len(m.Updates)
	case *PushPull:
		return base + member*len(m.Members)
	case *ControlAck:
		return base + len(m.Error) + 4096 // a status
	case *Control:
		return base + len(m.Value)
	}
	return base
}

// ErrUnexpectedType is wrapped by DecodeOnly's error for a known message
// type that the connection's state does not allow.
var ErrUnexpectedType = errors.New("message type not allowed in this state")

// bodyLimits bound the msgpack shape of one message type before it is
// decoded: the frame's size, how deep containers nest (the message itself is
// depth 1), the longest array or map, how many msgpack objects the body holds
// and how many map entries all its maps declare. They admit every message
// Validate accepts, and bound what decoding can allocate: map entries cost
// the decoder ~90 bytes each, whatever their size on the wire.
type bodyLimits struct {
	frame, depth, length, objects, entries int
}

const (
	structLen     = 32                 // fields of any struct, with room to append
	memberObjects = 8 + 2*MaxTags      // one Member: array, fields, full tags map
	introObjects  = 64 + memberObjects // a message's own fields and its From
)

// limitsOf returns t's limits; false for an unknown type.
func limitsOf(t MsgType) (bodyLimits, bool) {
	switch t {
	case TypeHello, TypeJoin: // [From [Tags{}]]
		return bodyLimits{MaxHandshakeFrame, 3, max(structLen, MaxTags), introObjects, MaxTags}, true
	case TypeJoinAck: // [From, Seen [Member [Tags{}]]]
		return bodyLimits{MaxHandshakeFrame, 4, max(structLen, MaxTags), introObjects + MaxSeen*memberObjects, (1 + MaxSeen) * MaxTags}, true
	case TypeHelloAck, TypeGossip, TypePushPull:
		return bodyLimits{MaxFrameSize, 4, MaxMembersPerFrame, introObjects + MaxMembersPerFrame*memberObjects, MaxTags + MaxTagsPerFrame}, true
	case TypePing, TypeAck:
		return bodyLimits{MaxFrameSize, 4, MaxProbeUpdates, introObjects + MaxProbeUpdates*memberObjects, MaxProbeUpdates * MaxTags}, true
	case TypeControlAck: // [Status [Tags{}, Config{}]]
		return bodyLimits{MaxFrameSize, 3, max(structLen, MaxTags, MaxConfigEntries, MaxKeyIDs), 64 + 2*structLen + 2*MaxTags + 2*MaxConfigEntries + MaxKeyIDs, MaxTags + MaxConfigEntries}, true
	case TypeJobRequest: // [Args [], Auth []]
		return bodyLimits{MaxFrameSize, 2, MaxJobArgs, 64 + structLen + MaxJobArgs, 0}, true
	case TypeControl, TypeJobResult: // [Auth []] or [Run []]
		return bodyLimits{MaxFrameSize, 2, structLen, 64 + structLen, 0}, true
	case TypePingReq, TypeNack, TypeLeave, TypeJobChunk, TypeJobCancel:
		return bodyLimits{MaxFrameSize, 1, structLen, 64, 0}, true
	}
	return bodyLimits{}, false
}

// Validate checks a decoded (or about to be sent) message against its type's
// limits and name rules. The error names the message type and the limit.
func Validate(m Message) error {
	if err := validate(m); err != nil {
		return fmt.Errorf("protocol: %s: %w", m.Type(), err)
	}
	return nil
}

func validate(m Message) error {
	switch m := m.(type) {
	case *Hello:
		return firstErr(validVersions(m.MinVersion, m.MaxVersion, m.CurVersion), validateIntro(m.Cluster, "", m.From))
	case *Join:
		return firstErr(validVersions(m.MinVersion, m.MaxVersion, m.CurVersion), validateIntro(m.Cluster, "", m.From))
	case *HelloAck:
		if err := firstErr(validVersions(m.MinVersion, m.MaxVersion, 0), validateIntro(m.Cluster, m.Error, m.From)); err != nil {
			return err
		}
		return validateList("members", m.Members)
	case *JoinAck:
		if err := firstErr(validVersions(m.MinVersion, m.MaxVersion, 0), validateIntro(m.Cluster, m.Error, m.From)); err != nil {
			return err
		}
		return validateMembers("seen entries", m.Seen, MaxSeen)
	case *Ping:
		return validateMembers("updates", m.Updates, MaxProbeUpdates)
	case *Ack:
		return validateMembers("updates", m.Updates, MaxProbeUpdates)
	case *Gossip:
		return validateList("updates", m.Updates)
	case *PushPull:
		return validateList("members", m.Members)
	case *PingReq:
		if err := ValidAlias(m.Target); err != nil {
			return fmt.Errorf("target: %w", err)
		}
		if m.Addr != "" {
			return ValidAddr(m.Addr)
		}
	case *Leave:
		return ValidAlias(m.Alias)
	case *Control:
		if err := firstErr(maxLen("op", m.Op, MaxOpLen), maxLen("key", m.Key, MaxKeyLen), maxLen("value", m.Value, MaxValueLen)); err != nil {
			return err
		}
		return validateSignature(m.Auth)
	case *ControlAck:
		if err := maxLen("error", m.Error, MaxAckErrorLen); err != nil || m.Status == nil {
			return err
		}
		return validateStatus(m.Status)
	case *JobRequest:
		if err := ValidKind(m.Kind); err != nil {
			return err
		}
		if len(m.Args) > MaxJobArgs {
			return fmt.Errorf("%d arguments exceed the limit of %d", len(m.Args), MaxJobArgs)
		}
		return validateSignature(m.Auth)
	case *JobResult:
		if m.Run != nil {
			return firstErr(maxLen("stdout", m.Run.Stdout, MaxJobOutput), maxLen("stderr", m.Run.Stderr, MaxJobOutput))
		}
	case *Nack, *JobChunk, *JobCancel: // bounded by the frame alone
	default:
		return fmt.Errorf("unknown message %T", m)
	}
	return nil
}

// validateIntro checks the common part of the four handshake messages. The
// sender's state may be unset; a refusal (errText set) may carry no sender.
func validateIntro(cluster, errText string, from Member) error {
	if err := ValidCluster(cluster); err != nil {
		return err
	}
	if err := maxLen("error", errText, MaxErrorLen); err != nil {
		return err
	}
	if errText != "" && from.Alias == "" && from.Addr == "" && len(from.Tags) == 0 {
		return nil
	}
	return from.validate()
}

// validateList checks a member list of up to MaxMembersPerFrame members and
// MaxTagsPerFrame tags.
func validateList(what string, ms []Member) error {
	if tags := tagsIn(ms); tags > MaxTagsPerFrame {
		return fmt.Errorf("%d tags in all exceed the limit of %d", tags, MaxTagsPerFrame)
	}
	return validateMembers(what, ms, MaxMembersPerFrame)
}

func validateMembers(what string, ms []Member, limit int) error {
	if len(ms) > limit {
		return fmt.Errorf("%d %s exceed the limit of %d", len(ms), what, limit)
	}
	for i := range ms {
		if err := ms[i].Validate(); err != nil {
			return err
		}
	}
	return nil
}

func validateStatus(s *NodeStatus) error {
	if err := firstErr(maxLen("status alias", s.Alias, MaxStatusString), maxLen("status version", s.Version, MaxStatusString)); err != nil {
		return err
	}
	if err := ValidTags(s.Tags); err != nil {
		return fmt.Errorf("status: %w", err)
	}
	if len(s.KeyIDs) > MaxKeyIDs {
		return fmt.Errorf("%d key ids exceed the limit of %d", len(s.KeyIDs), MaxKeyIDs)
	}
	for _, id := range s.KeyIDs {
		if err := maxLen("key id", id, MaxStatusString); err != nil {
			return err
		}
	}
	if len(s.Config) > MaxConfigEntries {
		return fmt.Errorf("%d config entries exceed the limit of %d", len(s.Config), MaxConfigEntries)
	}
	for k, v := range s.Config {
		if err := firstErr(maxLen("config key", k, MaxConfigKeyLen), maxLen("config value", v, MaxConfigValueLen)); err != nil {
			return err
		}
	}
	return nil
}

// validateSignature checks the shape of an operator's signature, if any
// (node/operator checks the signature itself).
func validateSignature(a *Signature) error {
	if a == nil {
		return nil
	}
	if err := firstErr(maxLen("nonce", string(a.Nonce), MaxNonceLen), maxLen("signature", string(a.Sig), MaxSigLen), maxLen("boot id", a.Boot, MaxBootLen)); err != nil {
		return err
	}
	if err := ValidAlias(a.Target); err != nil {
		return fmt.Errorf("signed target: %w", err)
	}
	return ValidAlias(a.Issuer)
}

// maxLen refuses a string longer than limit bytes.
func maxLen(what, s string, limit int) error {
	if len(s) > limit {
		return fmt.Errorf("%s of %d bytes exceeds the limit of %d", what, len(s), limit)
	}
	return nil
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// Carried is how many members and tags a membership message carries (0 for
// the others): its work for the run loop, by which the paces and queues
// that see decoded frames bound them rather than by their count.
func Carried(m Message) int {
	var ms []Member
	switch m := m.(type) {
	case *Ping:
		ms = m.Updates
	case *Ack:
		ms = m.Updates
	case *Gossip:
		ms = m.Updates
	case *PushPull:
		ms = m.Members
	}
	return len(ms) + tagsIn(ms)
}

// tagsIn counts the tags of the members ms.
func tagsIn(ms []Member) int {
	n := 0
	for i := range ms {
		n += len(ms[i].Tags)
	}
	return n
}
