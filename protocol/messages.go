package protocol

import "fmt"

// DefaultCluster is the cluster name used when none is given.
const DefaultCluster = "meshell"

// MsgType identifies a message on the wire. The values are on the wire:
// only append to this list, never renumber.
type MsgType uint8

// Membership family: 1–31.
const (
	TypeHello     MsgType = 1  // joiner → seed: who I am
	TypeHelloAck  MsgType = 2  // seed → joiner: who I am, every member I know
	TypeJoin      MsgType = 3  // joiner → member: who I am (no member list back)
	TypeJoinAck   MsgType = 4  // member → joiner: accepted or refused
	TypePing      MsgType = 5  // SWIM direct probe
	TypeAck       MsgType = 6  // SWIM probe answer
	TypePingReq   MsgType = 7  // SWIM indirect probe request
	TypeNack      MsgType = 8  // Lifeguard: the relay could not reach the target
	TypeGossip    MsgType = 9  // state changes pushed outside probe traffic
	TypePushPull  MsgType = 10 // full-state exchange
	TypeLeave     MsgType = 11 // graceful departure of the sender
	typeEndMember MsgType = 32
)

// Control family: 32–63.
const (
	TypeControl    MsgType = 32 // a control command for the receiving node
	TypeControlAck MsgType = 33 // its acknowledgement
	typeEndControl MsgType = 64
)

// Jobs family: 64–95.
const (
	TypeJobRequest MsgType = 64 // run a job
	TypeJobChunk   MsgType = 65 // one streamed piece of a job's output
	TypeJobResult  MsgType = 66 // the job's one final answer
	TypeJobCancel  MsgType = 67 // the caller no longer wants the job
	typeEndJobs    MsgType = 96
)

// Events family: 96–127, reserved for application events.
const typeEndEvents MsgType = 128

// Family is the class of a message, decided on arrival from its type alone,
// so that membership, control and job traffic are handled apart.
type Family uint8

const (
	FamilyUnknown Family = iota
	FamilyMembership
	FamilyControl
	FamilyJobs
	FamilyEvents
)

func (f Family) String() string {
	switch f {
	case FamilyMembership:
		return "membership"
	case FamilyControl:
		return "control"
	case FamilyJobs:
		return "jobs"
	case FamilyEvents:
		return "events"
	}
	return "unknown"
}

// Family returns the family a message type belongs to.
func (t MsgType) Family() Family {
	switch {
	case t == 0:
		return FamilyUnknown
	case t < typeEndMember:
		return FamilyMembership
	case t < typeEndControl:
		return FamilyControl
	case t < typeEndJobs:
		return FamilyJobs
	case t < typeEndEvents:
		return FamilyEvents
	}
	return FamilyUnknown
}

func (t MsgType) String() string {
	if n, ok := typeNames[t]; ok {
		return n
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

var typeNames = map[MsgType]string{
	TypeHello: "hello", TypeHelloAck: "hello-ack", TypeJoin: "join", TypeJoinAck: "join-ack",
	TypePing: "ping", TypeAck: "ack", TypePingReq: "ping-req", TypeNack: "nack",
	TypeGossip: "gossip", TypePushPull: "push-pull", TypeLeave: "leave",
	TypeControl: "control", TypeControlAck: "control-ack",
	TypeJobRequest: "job-request", TypeJobChunk: "job-chunk", TypeJobResult: "job-result",
	TypeJobCancel: "job-cancel",
}

// Message is implemented by every wire message.
type Message interface {
	Type() MsgType
}

// New returns a pointer to a zero message of type t, or nil when t is not a
// known type.
func New(t MsgType) Message {
	switch t {
	case TypeHello:
		return &Hello{}
	case TypeHelloAck:
		return &HelloAck{}
	case TypeJoin:
		return &Join{}
	case TypeJoinAck:
		return &JoinAck{}
	case TypePing:
		return &Ping{}
	case TypeAck:
		return &Ack{}
	case TypePingReq:
		return &PingReq{}
	case TypeNack:
		return &Nack{}
	case TypeGossip:
		return &Gossip{}
	case TypePushPull:
		return &PushPull{}
	case TypeLeave:
		return &Leave{}
	case TypeControl:
		return &Control{}
	case TypeControlAck:
		return &ControlAck{}
	case TypeJobRequest:
		return &JobRequest{}
	case TypeJobChunk:
		return &JobChunk{}
	case TypeJobResult:
		return &JobResult{}
	case TypeJobCancel:
		return &JobCancel{}
	}
	return nil
}

// State is a member's liveness as seen by the cluster. Values are on the wire.
type State uint8

const (
	StateUnknown State = iota
	StateAlive
	StateSuspect
	StateFailed // detected crash or cut-off
	StateLeft   // graceful departure
)

func (s State) String() string {
	switch s {
	case StateAlive:
		return "alive"
	case StateSuspect:
		return "suspect"
	case StateFailed:
		return "failed"
	case StateLeft:
		return "left"
	}
	return "unknown"
}

// ParseState reads a state word; "dead" is accepted for "failed".
func ParseState(s string) (State, error) {
	switch s {
	case "alive":
		return StateAlive, nil
	case "suspect":
		return StateSuspect, nil
	case "failed", "dead":
		return StateFailed, nil
	case "left":
		return StateLeft, nil
	}
	return StateUnknown, fmt.Errorf("unknown state %q: use alive, suspect, failed or left", s)
}

// Member is one node as gossiped: who it is, where to dial it, and what the
// sender believes of it.
type Member struct {
	Alias       string
	Addr        string // advertised host:port, never an ephemeral source port
	State       State
	Incarnation uint64
	Tags        map[string]string
	// Accuser is set on suspect news only: the member whose own probe
	// failed. Distinct accusers are Lifeguard's independent confirmations,
	// which shorten the suspicion timeout. It is not part of the table.
	Accuser string
}

// Hello opens a connection from a joiner to a seed.
// Version is the legacy single version (MinVersion since protocol 2, see
// NewHello); the range follows at the end.
type Hello struct {
	Version    uint16
	Cluster    string
	From       Member
	ConnID     uint64 // random per dial: orders two connections dialled by one side
	MinVersion uint16 // protocol 2: the sender speaks [MinVersion, MaxVersion]
	MaxVersion uint16
	CurVersion uint16 // ... and prefers CurVersion; all 0 from a protocol 1 node
}

// HelloAck answers Hello. On refusal Error says why and Members is empty.
// Version is the version chosen for the connection.
type HelloAck struct {
	Version uint16
	Cluster string
	Error   string
	From    Member
	Members []Member // every member the seed knows, itself included
	// Duplicate: the receiver already has a working connection to the
	// sender, which this one does not replace; the sender closes it.
	Duplicate  bool
	MinVersion uint16 // protocol 2: the receiver speaks [MinVersion, MaxVersion]; 0 from a protocol 1 node
	MaxVersion uint16
}

// Join opens a connection to a member named by a seed (or a redial). It is not
// answered with a member list.
type Join struct {
	Version    uint16 // as in Hello
	Cluster    string
	From       Member
	ConnID     uint64 // random per dial: orders two connections dialled by one side
	MinVersion uint16 // as in Hello
	MaxVersion uint16
	CurVersion uint16
}

// JoinAck answers Join. Seen is the receiver's entry for the joiner, if it has
// one, so that the joiner can refute a stale suspicion at once.
type JoinAck struct {
	Version    uint16 // as in HelloAck
	Cluster    string
	Error      string
	From       Member
	Seen       []Member
	Duplicate  bool   // as in HelloAck
	MinVersion uint16 // as in HelloAck
	MaxVersion uint16
}

// Ping is a direct probe. Updates piggyback state changes.
type Ping struct {
	Seq     uint32
	Updates []Member
}

// Ack answers a Ping (directly or relayed). Digest is the sender's
// membership digest, so that a straggler notices it missed an update.
type Ack struct {
	Seq     uint32
	Digest  uint32
	Updates []Member
}

// PingReq asks the receiver to probe Target on the sender's behalf.
type PingReq struct {
	Seq    uint32
	Target string
	Addr   string
}

// Nack tells the originator of a PingReq that the relay got no answer.
// Refused is set when the target's address actively refused a connection.
type Nack struct {
	Seq     uint32
	Refused bool
}

// Gossip pushes state changes outside probe traffic.
type Gossip struct {
	Updates []Member
	// Direct is set when the sender told every live member at once (news
	// of members that joined through it): receivers do not push it on.
	Direct bool
}

// PushPull carries the sender's whole membership table. Reply is set on the
// answer, which must not be answered again.
type PushPull struct {
	Reply   bool
	Members []Member
}

// Leave announces the sender's graceful departure at Incarnation.
type Leave struct {
	Alias       string
	Incarnation uint64
}

// Control is a command for the receiving node itself (not for its jobs).
type Control struct {
	ID    uint64
	Op    string // ping, status, scale, shutdown, restart, config, keys
	N     int64
	Key   string
	Value string
	Now   bool       // shutdown without draining
	Auth  *Signature // an operator's signature; nil when unsigned
}

// ControlAck answers a Control with the same ID. Error empty means ok.
type ControlAck struct {
	ID     uint64
	Error  string
	Status *NodeStatus
}

// NodeStatus is a node's self-description for the status command.
type NodeStatus struct {
	Alias         string
	Version       string
	UptimeMs      int64
	MembersAlive  int
	MembersSusp   int
	MembersFailed int
	Slots         int
	InFlight      int
	JobsDone      uint64
	Goroutines    int
	RSSBytes      uint64
	Tags          map[string]string
	Config        map[string]string
	BytesSent     uint64   // application bytes written to the cluster port
	KeyIDs        []string // installed cluster key ids, primary first; none = not encrypted
	Operators     bool     // control that changes the node needs an operator's signature
	// Protocol 2: the versions the node speaks and, as ProtoCur, the one its
	// connection to the asker speaks; all 0 from a protocol 1 node.
	ProtoMin, ProtoMax, ProtoCur uint16
	CPUMs                        uint64 // CPU time the process used, user and system: !top's CPU % from two of them; 0 from an older node
}

// JobRequest asks a worker to run one job.
// The last five fields are an operator's signature (node/operator) over the
// run kind's command, as Control's are; empty when unsigned.
type JobRequest struct {
	ID      uint64
	Kind    string
	Args    []string
	Attempt uint8
	Timeout int64      // nanoseconds; 0 = none
	Stream  bool       // run kind: send the output as JobChunks as it comes
	Auth    *Signature // an operator's signature (run kind); nil when unsigned
}

// Signature is an operator's signature over a request's operation,
// arguments, Target, Boot, Issuer, Nonce and Expiry (node/operator). It
// travels as one pointer so that an unsigned request pays one byte for it.
type Signature struct {
	Target string // the alias the request was signed for
	Issuer string // the operator who signed it
	Nonce  []byte
	Expiry int64 // Unix nanoseconds
	Sig    []byte
	// Boot is the boot id the target gossiped (its tag "boot") when the
	// request was signed: the run of the target it is for. Appended: a node
	// that gossips no boot id is sent none, and would skip it.
	Boot string
}

// JobChunk is one piece of a streaming job's output, in order of Seq.
type JobChunk struct {
	ID     uint64
	Seq    uint32
	Data   string
	Stream uint8 // StreamJob, StreamStdout or StreamStderr
}

// Streams of a JobChunk: a kind's own chunks, or a command's output (whole
// lines, several per chunk).
const (
	StreamJob    uint8 = 0
	StreamStdout uint8 = 1
	StreamStderr uint8 = 2
)

// JobStatus is the outcome of a job attempt.
type JobStatus uint8

const (
	JobOK        JobStatus = iota // Result holds the answer
	JobError                      // the job ran and failed: Error says why
	JobBusy                       // no slot and no queue room: try another worker
	JobCancelled                  // cancelled by the caller or the worker's shutdown
	JobRejected                   // the worker takes no jobs (draining): try another
	JobRefused                    // the worker will not run this (not allowed, not signed): do not retry
)

func (s JobStatus) String() string {
	switch s {
	case JobOK:
		return "ok"
	case JobError:
		return "error"
	case JobBusy:
		return "busy"
	case JobCancelled:
		return "cancelled"
	case JobRejected:
		return "rejected"
	case JobRefused:
		return "refused"
	}
	return fmt.Sprintf("status(%d)", uint8(s))
}

// JobResult is the one final answer to a JobRequest with the same ID.
// A command (the run kind, a declared kind) also reports its exit status
// and its captured output, each capped by the worker with a marker line.
type JobResult struct {
	ID     uint64
	Status JobStatus
	Result string
	Error  string
	Run    *RunOutput // a command's outcome (run and declared kinds); nil for other kinds
}

// RunOutput is what a command left: its exit status (128+N when killed by
// signal N) and, for the run kind, its capped stdout (a declared kind's
// stdout is the Result) and stderr.
type RunOutput struct {
	Exit   int32
	Stdout string
	Stderr string
}

// Output is r's command outcome, the zero value when it carries none.
func (r *JobResult) Output() RunOutput {
	if r.Run == nil {
		return RunOutput{}
	}
	return *r.Run
}

// JobCancel withdraws a job.
type JobCancel struct {
	ID uint64
}

func (*Hello) Type() MsgType      { return TypeHello }
func (*HelloAck) Type() MsgType   { return TypeHelloAck }
func (*Join) Type() MsgType       { return TypeJoin }
func (*JoinAck) Type() MsgType    { return TypeJoinAck }
func (*Ping) Type() MsgType       { return TypePing }
func (*Ack) Type() MsgType        { return TypeAck }
func (*PingReq) Type() MsgType    { return TypePingReq }
func (*Nack) Type() MsgType       { return TypeNack }
func (*Gossip) Type() MsgType     { return TypeGossip }
func (*PushPull) Type() MsgType   { return TypePushPull }
func (*Leave) Type() MsgType      { return TypeLeave }
func (*Control) Type() MsgType    { return TypeControl }
func (*ControlAck) Type() MsgType { return TypeControlAck }
func (*JobRequest) Type() MsgType { return TypeJobRequest }
func (*JobChunk) Type() MsgType   { return TypeJobChunk }
func (*JobResult) Type() MsgType  { return TypeJobResult }
func (*JobCancel) Type() MsgType  { return TypeJobCancel }
