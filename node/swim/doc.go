// Package swim is meshell's failure detector and membership protocol as a
// pure state machine: SWIM probing with indirect probes and suspicion,
// incarnations and refutation, piggybacked dissemination with a bounded
// retransmit queue, digest-triggered push/pull repair, Lifeguard local health
// and dogpile suspicion, and reconnection to failed members.
//
// A Core never reads the clock, opens a socket, sleeps or starts a goroutine.
// Its driver feeds it time (Tick), messages (Step) and connection evidence
// (Connected, ConnLost, DialFailed), and collects what it wants sent and what
// happened (Ready). The same Core runs in meshell's node over TCP and in the
// simulated network of this package's tests, where hundreds of nodes run
// deterministically against a fake clock.
//
// # Files
//
//   - core.go: the Core, message handling, merging through the table's one
//     precedence rule, refutation, dissemination, events.
//   - probe.go: the randomised round-robin, direct and indirect probes,
//     relaying, the hard-evidence fast path, Tick and NextDeadline.
//   - suspicion.go: the suspicion timer with Lifeguard's dogpile rule.
//   - awareness.go: Lifeguard's local health score.
//   - queue.go: the piggyback retransmit queue.
//   - timers.go: the heap of per-member timers (suspicion, re-contact, reap).
//   - limit.go: the bounds on new members (a rate limit per sender, a table
//     cap) and the record of which members were ever in contact.
//
// # Decisions
//
// Failure evidence. A closed connection (ConnLost) starts an immediate,
// out-of-turn probe. If the probe's dial is refused and every relay that
// answered was refused too (or there was no relay to ask), nothing listens at
// the member's address and it is failed at once, without suspicion: there
// is no live process to refute. A dial that times out is not such evidence.
//
// Lifeguard. The health score rises when a turn-based probe gets neither an
// ack nor any nack from its relays, when this node must refute a suspicion
// of itself, and when the driver calls in more than ProbeTimeout after the
// deadline it was given (CPU starvation, SIGSTOP); it falls with each
// successful turn-based probe. Out-of-turn probes do not move it: they come
// in bursts after one event and would count it many times over. Probe
// timeouts and suspicion timeouts are multiplied by score+1; a running
// suspicion follows the score as it moves, so that one begun during a few
// unhealthy seconds (a partition forming) does not keep a stretched timeout
// after the node recovered. A late call
// also gives already-expired probe and suspicion timers a short grace so
// that answers waiting in the driver's inbox are read before anyone is
// accused. Any message heard from a member under probe counts as its ack.
//
// Dogpile. Suspect news carries its accuser (protocol.Member.Accuser);
// distinct accusers of the same incarnation are confirmations that shrink
// the timeout from max to min. A copy that names no accuser (a push/pull,
// an echo) confirms nothing. Of the nodes hearing of a suspicion, the
// IndirectChecks whose hash with the suspect's alias is lowest probe it out
// of turn (their ping carries the suspicion, so a live member refutes at
// once), at most IndirectChecks+1 such probes in flight per node. The
// confirmer pushes its confirmation; others only piggyback it. A suspect
// that spoke to this node since its suspicion began gets one more timeout,
// and is told again, when the timer runs out: it runs, and has not heard
// of the suspicion yet. News of a suspicion from others is passed straight
// to the suspect by a node it spoke to within four probe intervals.
//
// Dissemination. A change to the table is queued for piggybacking and
// pushed in one Gossip to GossipFanout random live members: at once, or,
// within GossipInterval of the last push, together with the changes that
// follow, when that interval has passed — a join storm costs a bounded rate
// of pushes, not GossipFanout per change. A receiver re-pushes only what
// changed its own table, so the epidemic stops by itself. Leave and Rejoin
// go to every live member directly. A differing digest on an ack repairs by
// push/pull once this node's table has been quiet for PushPullMinGap, or at
// the latest ten of them after the first differing digest.
//
// Newcomers. A member that joined through this node (Introduced) is pushed
// to every live member, not GossipFanout of them, as a Direct gossip that
// receivers do not push on: members that join at once through one seed
// learn of each other within one GossipInterval. A member new to the table
// is not suspected by a failed probe for the longest suspicion after it was
// added or, when it came in a run of new members each within that time of
// the one before (a join storm), after the run's last one; such a probe
// does not move the health score: in a join storm it, its relays and this
// node are all still opening connections.
//
// Leaving. A node that left neither probes, relays, gossips nor refutes. It
// answers a Ping with an Ack carrying its own left entry, so a prober that
// missed the Leave learns it, and ignores every other message. Receivers of
// a Leave from the member itself mark it left (which outranks failed at one
// incarnation) and reap it after LeftReap.
//
// Re-contact. A failed member is sent a Ping carrying its failed state with
// exponential backoff (ReconnectBase doubling to ReconnectMax, ±10% jitter)
// for ReconnectTimeout, then reaped; at most RedialRate re-dials a second
// go out across all failed members, and those due beyond it wait in order
// (redialPaced). If it lives it refutes and comes back
// through any path. A peer that connects while this node holds news it must
// answer (a suspicion or failure at its incarnation, or a later incarnation
// of its alias after a restart) is sent that news, and refutes.
//
// Hostile and faulty peers. Incarnations saturate (manager.NextIncarnation)
// and third-party news may raise one by at most manager.MaxIncarnationJump
// above what the member last said in its own word, so that nobody can push
// a member, at once or step by step, to an incarnation it cannot refute. An
// alive entry in a member's own word (on its own connection) is believed at
// any height: a member that refutes news above its incarnation tells every
// live member itself, since some would refuse the refutation from others. A
// Leave is taken only from the member that leaves. While a member is in
// touch (its connection up), others' word that it was suspect or failed at
// a later incarnation is a suspicion at the incarnation held, and their
// word that it left, or for a later incarnation or other tags, is not
// believed: it is asked instead (doubt), its own Leave comes on its own
// connection, and it sends its tag changes, and its first refutation in a
// probe interval, to every live member itself. A member marked
// suspect, failed or left on anyone else's word is told at once, and its
// own entry rides on whatever is sent to it, so that a live member refutes
// within a round trip. A relay probes only members it knows, at the address it knows. New
// members are rate limited per sender (handshake lists excepted) and the
// table is capped. A member learned only from others that never answered
// is reaped UnverifiedReap after it was learned once it fails, instead of
// being re-contacted for ReconnectTimeout: invented members cost a few
// dials, not a day of them. The digest covers alive and suspect members
// only, the part of the view a joiner can learn.
//
// Determinism. Every random choice comes from the seeded generator; maps
// are never iterated where the order could change an outcome.
//
// It imports protocol, manager and node/metrics (atomic counters) only.
package swim
