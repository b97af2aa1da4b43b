package swim

import (
	"fmt"
	"time"
)

// Config holds the failure-detection timings. Use a preset and adjust.
type Config struct {
	ProbeInterval    time.Duration // time between two probes by this node
	ProbeTimeout     time.Duration // wait for a direct ack before the indirect round
	IndirectChecks   int           // members asked to probe on our behalf (k)
	SuspicionMult    int           // suspicion timeout = mult × max(1, log10 N) × interval, at least
	SuspicionMaxMult int           // ... and at most SuspicionMaxMult × that, shrinking with confirmations
	RetransmitMult   int           // each update rides along ≈ mult × log10(N+1) messages (λ)
	GossipFanout     int           // members told of a change at once, besides piggybacking
	GossipInterval   time.Duration // least time between two such pushes; changes meanwhile go out together
	MaxPiggyback     int           // updates carried by one ping or ack
	QueueLimit       int           // bound of the retransmit queue; oldest updates are dropped first
	PushPullInterval time.Duration // periodic full-state exchange with one random member
	PushPullMinGap   time.Duration // least time between two digest-triggered exchanges
	AwarenessMax     int           // Lifeguard: timeouts stretch up to (AwarenessMax+1)×
	ReconnectBase    time.Duration // first re-dial of a failed member
	ReconnectMax     time.Duration // backoff ceiling for re-dials
	ReconnectTimeout time.Duration // failed members are re-dialled this long, then reaped
	RedialRate       int           // re-dials per second across all failed members (burst as many); more wait their turn
	LeftReap         time.Duration // left members are kept this long, then reaped
	UnverifiedReap   time.Duration // members never in contact: reaped this long after learned, once failed or left
	NewMemberBurst   int           // new members one sender may introduce at once ...
	NewMemberRate    int           // ... and per second after that (a token bucket per sender)
	MaxMembers       int           // table size cap, self and every state included; new members beyond it are refused
}

// maxMembersLimit is the largest MaxMembers that Validate accepts: far
// beyond what a full mesh can hold, and still a bound on memory.
const maxMembersLimit = 1 << 20

// LANConfig is the default: a LAN or one machine, fast detection.
func LANConfig() Config {
	return Config{
		ProbeInterval:    250 * time.Millisecond, // 4 probes/s: ~90 B/s and ≤ 0.2% of a core per node
		ProbeTimeout:     100 * time.Millisecond, // LAN round trips are well under 1 ms
		IndirectChecks:   3,                      // as memberlist
		SuspicionMult:    3,                      // 750 ms at N ≤ 10 once confirmed
		SuspicionMaxMult: 3,                      // 2.25 s with no confirmation at all
		RetransmitMult:   4,                      // as memberlist
		GossipFanout:     3,                      // as memberlist
		GossipInterval:   100 * time.Millisecond, // a join storm costs ≤ 30 pushes/s per node, not 4 per change
		MaxPiggyback:     8,                      // keeps a ping small
		QueueLimit:       1024,                   // pending updates; drop-oldest beyond
		PushPullInterval: 60 * time.Second,       // rare: digests trigger repair sooner
		PushPullMinGap:   500 * time.Millisecond, // rate limit for digest-triggered repair
		AwarenessMax:     8,                      // as memberlist
		ReconnectBase:    250 * time.Millisecond, // first re-dial of a failed member
		ReconnectMax:     2 * time.Second,        // healed partitions merge within a few s
		ReconnectTimeout: 24 * time.Hour,         // as serf's reconnect timeout
		RedialRate:       16,                     // a node that lost 500 members dials 16 a second, not 250
		LeftReap:         time.Hour,              // left members are shown for an hour
		UnverifiedReap:   30 * time.Second,       // a member nobody could reach is hearsay: it goes soon
		NewMemberBurst:   256,                    // a seed's gossip of 200 nodes joining at once passes
		NewMemberRate:    64,                     // a flood from one sender grows the table slowly
		MaxMembers:       4096,                   // bounds the memory a flood can take
	}
}

// LocalConfig is for loopback and tmux clusters on one machine.
func LocalConfig() Config {
	c := LANConfig()
	c.ProbeInterval = 100 * time.Millisecond
	c.ProbeTimeout = 50 * time.Millisecond
	c.GossipInterval = 50 * time.Millisecond
	c.SuspicionMult = 3
	c.ReconnectMax = time.Second
	return c
}

// WANConfig tolerates long and variable round trips.
func WANConfig() Config {
	c := LANConfig()
	c.ProbeInterval = time.Second
	c.ProbeTimeout = 500 * time.Millisecond
	c.SuspicionMult = 6
	c.ReconnectMax = 10 * time.Second
	return c
}

// Profile returns the preset named lan, local or wan.
func Profile(name string) (Config, error) {
	switch name {
	case "lan", "":
		return LANConfig(), nil
	case "local":
		return LocalConfig(), nil
	case "wan":
		return WANConfig(), nil
	}
	return Config{}, fmt.Errorf("unknown profile %q: use lan, local or wan", name)
}

// Validate explains the first setting that cannot work.
func (c Config) Validate() error {
	switch {
	case c.ProbeInterval <= 0 || c.ProbeInterval > time.Minute:
		return fmt.Errorf("probe interval %v must be positive and at most 1m", c.ProbeInterval)
	case c.ProbeTimeout <= 0 || c.ProbeTimeout >= c.ProbeInterval:
		return fmt.Errorf("probe timeout %v must be positive and below the probe interval %v", c.ProbeTimeout, c.ProbeInterval)
	case c.IndirectChecks < 0 || c.IndirectChecks > 16:
		return fmt.Errorf("indirect checks %d must be 0 to 16", c.IndirectChecks)
	case c.SuspicionMult < 1 || c.SuspicionMult > 100:
		return fmt.Errorf("suspicion multiplier %d must be 1 to 100", c.SuspicionMult)
	case c.SuspicionMaxMult < 1:
		return fmt.Errorf("suspicion max multiplier %d must be at least 1", c.SuspicionMaxMult)
	case c.RetransmitMult < 1:
		return fmt.Errorf("retransmit multiplier %d must be at least 1", c.RetransmitMult)
	case c.GossipFanout < 0 || c.MaxPiggyback < 1 || c.QueueLimit < 1:
		return fmt.Errorf("gossip fanout, max piggyback and queue limit must be positive")
	case c.GossipInterval < 0 || c.GossipInterval >= c.ProbeInterval:
		return fmt.Errorf("gossip interval %v must be at least 0 and below the probe interval %v", c.GossipInterval, c.ProbeInterval)
	case c.PushPullInterval <= 0 || c.PushPullMinGap < 0:
		return fmt.Errorf("push/pull interval must be positive")
	case c.AwarenessMax < 0:
		return fmt.Errorf("awareness max %d must not be negative", c.AwarenessMax)
	case c.ReconnectBase <= 0 || c.ReconnectMax < c.ReconnectBase:
		return fmt.Errorf("reconnect backoff %v..%v is not a positive range", c.ReconnectBase, c.ReconnectMax)
	case c.RedialRate < 1:
		return fmt.Errorf("redial rate %d/s must be at least 1", c.RedialRate)
	case c.ReconnectTimeout <= 0 || c.LeftReap <= 0 || c.UnverifiedReap <= 0:
		return fmt.Errorf("reconnect timeout, left reap and unverified reap must be positive")
	case c.NewMemberBurst < 1 || c.NewMemberRate < 1:
		return fmt.Errorf("new member burst %d and rate %d/s must be at least 1", c.NewMemberBurst, c.NewMemberRate)
	case c.MaxMembers < 2 || c.MaxMembers > maxMembersLimit:
		return fmt.Errorf("max members %d must be between 2 and %d", c.MaxMembers, maxMembersLimit)
	}
	return nil
}
