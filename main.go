// Command meshell is an interactive cluster shell: every process is a node
// of a full-mesh TCP cluster with a REPL in front of it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"os/signal"
	"regexp"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/sirupsen/logrus"

	"meshell/node"
	"meshell/repl"
)

const version = "0.1.0"

type options struct {
	alias, bind, advertise, join, cluster, tags string
	port                                        int
	serve, keepGoing, noColor, showVersion      bool
	demo                                        bool
	logLevel, logFile, logFormat                string
	profile                                     string
	acceptControl                               bool
	historyFile                                 string
	keyFile, operatorsFile, operatorKey         string
	insecure                                    bool
	slots, maxSlots, maxMembers                 int
	maxJobTimeout                               time.Duration
	swim                                        [][2]string // failure-detection flags as given: key, value
	allowRun                                    bool
	kinds                                       []node.DeclaredKind
	retryMax                                    int
	retryInterval                               time.Duration
	socket                                      string
	metrics                                     string
	set                                         map[string]bool
}

// usage heads meshell --help, before the flags.
const usage = `usage: meshell [flags]                 start a node with a shell (--serve: headless)
       meshell attach [SOCKET|ALIAS] [-c COMMAND]... [flags]
                                      a shell on a running node (meshell attach -h)
       meshell keygen [--operator NAME --out FILE]
                                      print a cluster key, or make an operator key
flags:
`

func parseFlags(args []string, stdout io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("meshell", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.alias, "alias", "", "this node's alias, unique in the cluster (default node-<port>)")
	fs.StringVar(&o.alias, "node-alias", "", "same as --alias")
	fs.StringVar(&o.bind, "bind", "127.0.0.1:2254", "cluster listen address HOST:PORT (port 0 = any free port)")
	fs.IntVar(&o.port, "port", 0, "the listen port only, with the host of --bind (which must then name the same port, if given); 0 = any free port")
	fs.IntVar(&o.port, "P", 0, "same as --port")
	fs.StringVar(&o.advertise, "advertise", "", "address other nodes dial to reach this node (default: the bind address)")
	fs.StringVar(&o.join, "join", "", "listen and join at start-up: ADDR[,ADDR…] (a DNS name may resolve to several)")
	fs.StringVar(&o.cluster, "cluster", node.DefaultCluster, "cluster name; nodes of another cluster are refused")
	fs.StringVar(&o.tags, "tags", "", "tags gossiped with this node: k=v[,k=v…] (e.g. role=worker)")
	fs.BoolVar(&o.serve, "serve", false, "headless agent: no REPL; runs until SIGINT/SIGTERM/SIGHUP")
	fs.BoolVar(&o.keepGoing, "keep-going", false, "script mode: go on after a failed command (exit status is still 1)")
	fs.BoolVar(&o.noColor, "no-color", false, "no ANSI colour (also when NO_COLOR is set or stdout is not a terminal)")
	fs.StringVar(&o.logLevel, "log-level", "warn", "log level: debug, info, warn, error")
	fs.StringVar(&o.logFile, "log-file", "", "write logs to this file instead of stderr")
	fs.StringVar(&o.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&o.profile, "profile", "lan", "failure-detection timings: lan, local (loopback/tmux) or wan")
	fs.BoolVar(&o.acceptControl, "accept-control", true, "accept remote shutdown, restart and scale")
	fs.StringVar(&o.historyFile, "history-file", "", "readline history file (interactive only; default ~/.meshell_history)")
	for _, f := range [][2]string{
		{"probe-interval", "time between two probes, e.g. 250ms (default: from --profile)"},
		{"probe-timeout", "direct probe timeout, e.g. 100ms (default: from --profile)"},
		{"indirect-checks", "members asked to probe indirectly (default: from --profile)"},
		{"suspicion-mult", "suspicion timeout multiplier (default: from --profile)"},
	} {
		key := f[0]
		fs.Func(key, f[1], func(v string) error { o.swim = append(o.swim, [2]string{key, v}); return nil })
	}
	fs.StringVar(&o.keyFile, "key-file", "", "cluster keys, one per line, the first is primary (or MESHELL_KEY); every connection is then TLS 1.3")
	fs.BoolVar(&o.insecure, "insecure", false, "without a cluster key, take peers from and dial any address (default: loopback only)")
	fs.StringVar(&o.operatorsFile, "operators", "", "operators file: control that changes this node must be signed by one of them")
	fs.StringVar(&o.operatorKey, "operator-key", "", "operator private key that signs the control requests this shell sends")
	fs.IntVar(&o.slots, "slots", 0, "job slots at start-up, 0 to --max-slots (default: the number of CPUs); !scale changes them")
	fs.IntVar(&o.maxSlots, "max-slots", node.DefaultMaxSlots(), "most job slots !scale may give this node")
	fs.DurationVar(&o.maxJobTimeout, "max-job-timeout", node.DefaultMaxJobTimeout, "longest a job may run on this node")
	fs.IntVar(&o.maxMembers, "max-members", node.LANTunables().MaxMembers, "largest membership table and most accepted connections")
	fs.BoolVar(&o.allowRun, "allow-run", false, "run the commands of !run sent to this node (signed ones only with --operators)")
	fs.Func("kind", "declare a job kind NAME=COMMAND [ARGS…] that runs COMMAND with the job's arguments (NAME!=… if it may run twice); repeatable", func(v string) error {
		d, err := node.ParseKindSpec(v)
		if err == nil {
			o.kinds = append(o.kinds, d)
		}
		return err
	})
	o.retryMax = -1 // not given: the mode decides
	fs.Func("retry-max", "`N` rounds of --join before giving up; 0 = no limit (default: no limit with --serve, 3 with a shell)", func(v string) error {
		n, err := strconv.Atoi(v)
		if err != nil {
			return errors.New("give a whole number of rounds, or 0 for no limit")
		}
		o.retryMax = n
		return nil
	})
	fs.DurationVar(&o.retryInterval, "retry-interval", node.RetryForever.Cap, "longest wait between two rounds of --join (the wait starts at 250ms and doubles)")
	fs.StringVar(&o.socket, "socket", "", "local control socket for meshell attach, or none (default: "+repl.SocketDir()+"/ALIAS.sock)")
	fs.StringVar(&o.metrics, "metrics", "", "serve Prometheus metrics at http://HOST:PORT/metrics (off by default)")
	fs.BoolVar(&o.showVersion, "version", false, "print the version and exit")
	fs.BoolVar(&o.demo, "demo", false, "start with two in-process worker nodes already joined")
	// A bad flag is one "error: …" line (run prints it); only -h shows the
	// usage.
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, usage)
			printDefaults(stdout, fs)
			return nil, err
		}
		return nil, fmt.Errorf("%s (see --help)", flagError(err))
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unknown command %q: meshell takes flags, or one of: attach, keygen (see meshell --help)", fs.Arg(0))
	}
	o.set = map[string]bool{}
	fs.Visit(func(f *flag.Flag) { o.set[f.Name] = true })
	return o, nil
}

// parseSub parses a subcommand's args with fs: -h prints its usage
// (status 0), a bad flag one "error: …" line (status 2); ok is set when
// parsing succeeded.
func parseSub(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) (status int, ok bool) {
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	switch {
	case err == nil:
		return 0, true
	case errors.Is(err, flag.ErrHelp):
		fs.SetOutput(stdout) // asked for: it goes where | less can read it
		fs.Usage()
		return 0, false
	}
	fmt.Fprintf(stderr, "error: %s (see %s -h)\n", repl.Clean(flagError(err)), fs.Name())
	return 2, false
}

// printDefaults lists fs's flags as they are typed: --name, or -P for a
// one-letter one (the flag package prints every name with one dash).
func printDefaults(w io.Writer, fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		typ, usage := flag.UnquoteUsage(f)
		line := "  " + dashes(f.Name)
		if typ != "" {
			line += " " + typ
		}
		line += "\n    \t" + strings.ReplaceAll(usage, "\n", "\n    \t")
		if d := f.DefValue; d != "" && d != "false" && d != "0" && d != "0s" && d != "[]" {
			if typ == "string" {
				d = strconv.Quote(d)
			}
			line += " (default " + d + ")"
		}
		fmt.Fprintln(w, line)
	})
}

func dashes(name string) string {
	if len(name) == 1 {
		return "-" + name
	}
	return "--" + name
}

// flagError is a flag package error with the flag named as it is typed
// (--bogus, not -bogus).
func flagError(err error) string {
	return flagName.ReplaceAllStringFunc(err.Error(), func(m string) string {
		i := strings.IndexByte(m, '-')
		return m[:i] + dashes(strings.TrimLeft(m[i:], "-"))
	})
}

var flagName = regexp.MustCompile(`(defined: |flag )-+[A-Za-z0-9][A-Za-z0-9_-]*`)

func main() {
	setGCPercent()
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// gcPercent is the collector's default here: a node's live heap is a few
// MiB, and at Go's 100 a 100-process join storm takes a third more CPU and
// converges later, its RSS no lower (BENCHMARKS.md, Scale). GOGC in the
// environment wins.
const gcPercent = 200

func setGCPercent() {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(gcPercent)
	}
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "keygen" {
		return keygen(args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "attach" {
		return attachCmd(args[1:], stdin, stdout, stderr)
	}
	o, err := parseFlags(args, stdout)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "error: %s\n", repl.Clean(err.Error()))
		return 2
	}
	if o.showVersion {
		fmt.Fprintf(stdout, "meshell %s (protocol %d, speaks %s)\n", version, node.ProtocolVersion, node.SupportedVersions())
		return 0
	}
	cfg, log, err := o.nodeConfig(stderr)
	if err != nil {
		fmt.Fprintf(stderr, "error: %s\n", repl.Clean(err.Error()))
		return 2
	}
	n, err := node.New(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "error: %s\n", repl.Clean(err.Error()))
		return 2
	}
	defer n.Close()
	if o.set["slots"] {
		if err := n.SetSlots(o.slots); err != nil {
			fmt.Fprintf(stderr, "error: --slots: %s\n", repl.Clean(err.Error()))
			return 2
		}
	}
	if o.metrics != "" {
		addr, err := n.ServeMetrics(o.metrics)
		if err != nil {
			fmt.Fprintf(stderr, "error: --metrics: %s; pick another HOST:PORT\n", repl.Clean(err.Error()))
			return 1
		}
		log.WithField("addr", addr).Info("metrics: serving /metrics")
	}
	srv, err := o.listenSocket(n, cfg.Bind, log)
	if err != nil {
		fmt.Fprintf(stderr, "error: %s\n", repl.Clean(err.Error()))
		return 1
	}
	if srv != nil {
		defer srv.Close()
	}

	defer startGiveBack()()

	interactive := !o.serve && isTTY(stdin)
	if o.serve || o.join != "" || o.demo {
		if _, err := n.Start(""); err != nil {
			fmt.Fprintf(stderr, "error: %s\n", repl.Clean(err.Error()))
			return 1
		}
	}
	if o.join != "" {
		told := io.Discard // a script's or --serve's output is its commands' own
		if interactive {
			told = stdout
		}
		if err := o.joinAtStart(n, told, stderr); err != nil {
			fmt.Fprintf(stderr, "error: %s\n", repl.Clean(err.Error()))
			if !interactive {
				return 1
			}
		}
	}
	if o.demo {
		stop, err := startDemoWorkers(n, cfg)
		if err != nil {
			fmt.Fprintf(stderr, "error: demo: %v\n", err)
			return 1
		}
		defer stop()
	}
	if o.serve {
		return serve(n, log)
	}
	// Colour is decided once: a terminal on stdout, no --no-color, no
	// NO_COLOR (https://no-color.org) and a terminal that knows colours.
	useColor := interactive && !o.noColor && os.Getenv("NO_COLOR") == "" && os.Getenv("TERM") != "dumb" && isTTY(stdout)
	sh := repl.New(n, repl.Options{Out: stdout, Err: stderr, Color: useColor, Interactive: interactive})
	if !interactive {
		stop := leaveOnSignal(n, srv.Close, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
		defer stop()
		return sh.RunScript(context.Background(), stdin, o.keepGoing)
	}
	// History: interactive only (script mode never reaches here).
	hist := historyPath(o.historyFile)
	in, err := repl.NewInteractive(sh, hist)
	if err != nil {
		fmt.Fprintf(stderr, "error: terminal: %v\n", err)
		return 1
	}
	if o.logFile == "" {
		log.SetOutput(in.Stderr())
	}
	if o.demo {
		run := "commands run on them with meshell --demo --allow-run"
		if o.allowRun {
			run = "and !run --all -- uname -a"
		}
		fmt.Fprintf(stdout, "demo cluster: %s at %s with worker1 and worker2 (role=worker); try !cluster_members or !help\n%s\n", n.Alias(), n.Addr(), run)
	}
	return in.Run(context.Background())
}

// nodeConfig turns flags into a node configuration and a logger.
func (o *options) nodeConfig(stderr io.Writer) (node.Config, *logrus.Logger, error) {
	cfg := node.DefaultConfig()
	log := logrus.New()
	log.SetOutput(stderr)
	lvl, err := logrus.ParseLevel(o.logLevel)
	if err != nil {
		return cfg, nil, fmt.Errorf("--log-level %q: use debug, info, warn or error", o.logLevel)
	}
	log.SetLevel(lvl)
	switch o.logFormat {
	case "text":
		log.SetFormatter(&logrus.TextFormatter{DisableColors: true, FullTimestamp: true})
	case "json":
		log.SetFormatter(&logrus.JSONFormatter{})
	default:
		return cfg, nil, fmt.Errorf("--log-format %q: use text or json", o.logFormat)
	}
	if o.logFile != "" {
		f, err := os.OpenFile(o.logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return cfg, nil, fmt.Errorf("--log-file: %w", err)
		}
		log.SetOutput(f)
	}
	cfg.Log = log
	cfg.Version = version
	cfg.RefuseControl = !o.acceptControl
	cfg.Alias = o.alias
	if o.set["alias"] || o.set["node-alias"] {
		if err := node.ValidAlias(o.alias); err != nil {
			return cfg, nil, fmt.Errorf("--alias: %w", err)
		}
	}
	if err := node.ValidCluster(o.cluster); err != nil {
		return cfg, nil, fmt.Errorf("--cluster: %w", err)
	}
	cfg.Cluster = o.cluster
	cfg.Advertise = o.advertise
	cfg.Bind = o.bind
	host, port, err := net.SplitHostPort(o.bind)
	if err != nil {
		return cfg, nil, fmt.Errorf("--bind %q is not HOST:PORT", o.bind)
	}
	if o.set["port"] || o.set["P"] {
		if o.port < 0 || o.port > 65535 {
			return cfg, nil, fmt.Errorf("--port %d is not a port number: use 1 to 65535, or 0 for any free port", o.port)
		}
		flag := "-P"
		if o.set["port"] {
			flag = "--port"
		}
		if o.set["bind"] && port != strconv.Itoa(o.port) {
			return cfg, nil, fmt.Errorf("--bind %s and %s %d disagree on the port: drop %s, or give both the same port", o.bind, flag, o.port, flag)
		}
		port = strconv.Itoa(o.port)
	}
	cfg.Bind = net.JoinHostPort(host, port)
	if o.advertise != "" {
		if _, _, err := net.SplitHostPort(o.advertise); err != nil {
			return cfg, nil, fmt.Errorf("--advertise %q is not HOST:PORT", o.advertise)
		}
	}
	if err := node.CheckListen(cfg.Bind, o.advertise); err != nil {
		return cfg, nil, fmt.Errorf("--bind: %w", err)
	}
	if cfg.Tags, err = parseTags(o.tags); err != nil {
		return cfg, nil, err
	}
	if cfg.SWIM, err = node.Profile(o.profile); err != nil {
		return cfg, nil, fmt.Errorf("--profile: %w", err)
	}
	if err := o.security(&cfg); err != nil {
		return cfg, nil, err
	}
	if o.maxSlots < 1 {
		return cfg, nil, fmt.Errorf("--max-slots %d: give at least 1", o.maxSlots)
	}
	if o.set["slots"] && (o.slots < 0 || o.slots > o.maxSlots) {
		return cfg, nil, fmt.Errorf("--slots %d: give 0 to %d (--max-slots)", o.slots, o.maxSlots)
	}
	if o.maxJobTimeout <= 0 {
		return cfg, nil, fmt.Errorf("--max-job-timeout %v: give a positive duration such as 1h", o.maxJobTimeout)
	}
	if o.set["retry-max"] && o.retryMax < 0 {
		return cfg, nil, fmt.Errorf("--retry-max %d: give a number of rounds, or 0 for no limit", o.retryMax)
	}
	if o.retryInterval <= 0 {
		return cfg, nil, fmt.Errorf("--retry-interval %v: give a positive duration such as 2s", o.retryInterval)
	}
	if o.metrics != "" {
		if _, _, err := net.SplitHostPort(o.metrics); err != nil {
			return cfg, nil, fmt.Errorf("--metrics %q is not HOST:PORT (e.g. 127.0.0.1:9100)", o.metrics)
		}
	}
	cfg.Jobs = node.JobLimits{MaxSlots: o.maxSlots, MaxJobTimeout: o.maxJobTimeout}
	cfg.Run = node.RunConfig{Allow: o.allowRun, Kinds: o.kinds}
	cfg.SWIM.MaxMembers = o.maxMembers
	if err := node.SetTunables(&cfg.SWIM, nil); err != nil { // the profile is valid: the bound is at fault
		return cfg, nil, fmt.Errorf("--max-members: %w", err)
	}
	if err := node.SetTunables(&cfg.SWIM, o.swim); err != nil {
		return cfg, nil, fmt.Errorf("failure-detection flags: %w", err)
	}
	return cfg, log, nil
}

func parseTags(s string) (map[string]string, error) {
	if s == "" {
		return map[string]string{}, nil
	}
	tags, err := repl.ParseTags(s)
	if err != nil {
		return nil, fmt.Errorf("--tags: %w", err)
	}
	for _, k := range slices.Sorted(maps.Keys(tags)) {
		if err := node.OwnedTag(k); err != nil {
			return nil, fmt.Errorf("--tags: %w", err)
		}
	}
	return tags, nil
}

// joinAtStart joins through the first of the --join addresses that
// answers (a host name may resolve to several, each tried), round after
// round with backoff while none answers, for --retry-max rounds (no limit
// with --serve, 3 with a shell). SIGINT or SIGTERM stops trying. A line on
// stderr tells of failed rounds, at most one every 5 s; one on told, of the
// join, as !join_cluster says it.
func (o *options) joinAtStart(n *node.Node, told, stderr io.Writer) error {
	var addrs, unresolved []string
	for _, a := range strings.Split(o.join, ",") {
		a = strings.TrimSpace(a)
		host, port, err := net.SplitHostPort(a)
		if err != nil {
			return fmt.Errorf("--join %q is not HOST:PORT", a)
		}
		ips, err := net.LookupHost(host)
		if err != nil {
			unresolved = append(unresolved, fmt.Sprintf("%s: %v", a, err))
			continue // another name may resolve
		}
		for _, ip := range ips {
			addrs = append(addrs, net.JoinHostPort(ip, port))
		}
	}
	if len(addrs) == 0 {
		return fmt.Errorf("--join: no address resolved: %s", strings.Join(unresolved, "; "))
	}
	r := node.RetryForever
	r.Cap = max(o.retryInterval, r.First)
	switch {
	case o.retryMax >= 0:
		r.Max = o.retryMax
	case !o.serve:
		r.Max = 3
	}
	var said time.Time
	rounds := 1 // the last one is not told to Failed
	r.Failed = func(round int, err error, wait time.Duration) {
		rounds = round + 1
		if time.Since(said) < 5*time.Second {
			return
		}
		said = time.Now()
		of := ""
		if r.Max > 0 {
			of = fmt.Sprintf(" of %d", r.Max)
		}
		fmt.Fprintf(stderr, "warning: --join round %d%s failed: %s; trying again (every %v at most)\n", round, of, repl.Clean(err.Error()), r.Cap)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := n.JoinRetry(ctx, addrs, node.JoinWait, r)
	if err == nil {
		fmt.Fprintf(told, "joined cluster %s through %s (%s) as %s: %d live members\n", repl.Clean(n.Cluster()), repl.Clean(res.Seed.Alias),
			repl.Clean(res.Seed.Addr), repl.Clean(n.Alias()), res.Members)
		return nil
	}
	cancelled := ctx.Err() != nil
	if cancelled && isTTY(stderr) {
		fmt.Fprintln(stderr) // after the terminal's ^C
	}
	return joinFailure(err, cancelled, rounds, o.join, o.cluster, o.keyFile != "" || os.Getenv(node.KeyEnvVar) != "")
}

// joinFailure is the error of a --join that joined no cluster: cancelled
// by a signal (not the last dial's error then), refused (the seed says
// why), or what to check after rounds rounds through join.
func joinFailure(err error, cancelled bool, rounds int, join, cluster string, keyed bool) error {
	switch {
	case cancelled:
		return fmt.Errorf("--join cancelled before a seed at %s answered", join)
	case node.Final(err):
		return err
	}
	key := "no cluster key (this node has none)"
	if keyed {
		key = "a key this node holds (--key-file or MESHELL_KEY)"
	}
	after := ""
	if rounds > 1 {
		after = fmt.Sprintf(" after %d rounds", rounds)
	}
	return fmt.Errorf("--join gave up%s: %w; check that a meshell node is running at %s (the address and port it was given with --bind or -P), with --cluster %s and %s",
		after, err, join, cluster, key)
}

// serve runs headless until SIGINT, SIGTERM or SIGHUP: the first leaves
// gracefully, a second SIGINT or SIGTERM exits at once (more SIGHUPs do not:
// a closed terminal sends several).
func serve(n *node.Node, log logrus.FieldLogger) int {
	sig := make(chan os.Signal, 4)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sig)
	log.WithFields(logrus.Fields{"alias": n.Alias(), "addr": n.Addr()}).Info("serving")
	select {
	case <-sig:
	case <-n.ShutdownRequested(): // a remote !shutdown drained and left already
		return 0
	}
	done := make(chan struct{})
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		n.Leave(ctx)
		close(done)
	}()
	for {
		select {
		case <-done:
			return 0
		case s := <-sig:
			if s != syscall.SIGHUP {
				return 1
			}
		}
	}
}

// leaveOnSignal makes the first of sigs leave the cluster gracefully (within
// about a second) and exit 128+signal, and a second one other than SIGHUP
// exit at once; cleanup runs before a graceful exit. The returned func stops
// watching.
func leaveOnSignal(n *node.Node, cleanup func(), sigs ...os.Signal) func() {
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, sigs...)
	done := make(chan struct{})
	go func() {
		var first os.Signal
		select {
		case first = <-ch:
		case <-done:
			return
		}
		code := 128 + int(first.(syscall.Signal))
		go func() {
			for s := range ch {
				if s != syscall.SIGHUP { // a closed terminal sends several
					os.Exit(code)
				}
			}
		}()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		n.Leave(ctx)
		cancel()
		cleanup() // os.Exit skips the deferred calls: the control socket goes now
		os.Exit(code)
	}()
	return func() {
		signal.Stop(ch)
		close(done)
	}
}

// startDemoWorkers starts two in-process worker nodes joined to n.
func startDemoWorkers(n *node.Node, base node.Config) (func(), error) {
	host, _, _ := net.SplitHostPort(base.Bind)
	var workers []*node.Node
	stop := func() {
		for _, w := range workers {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			w.Leave(ctx)
			cancel()
			w.Close()
		}
	}
	for i := 1; i <= 2; i++ {
		cfg := base
		cfg.Alias = fmt.Sprintf("worker%d", i)
		cfg.Bind = net.JoinHostPort(host, "0")
		cfg.Advertise = ""
		cfg.Tags = map[string]string{"role": "worker"}
		// The shell's logger, so at its level and above its prompt; one
		// process, one log: !config set log-level on a worker sets it for all.
		cfg.Log = base.Log.WithField("node", cfg.Alias)
		w, err := node.New(cfg)
		if err != nil {
			stop()
			return nil, err
		}
		workers = append(workers, w)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err = w.Join(ctx, n.Addr())
		cancel()
		if err != nil {
			stop()
			return nil, err
		}
	}
	return stop, nil
}

func isTTY(f any) bool {
	if fd, ok := f.(interface{ Fd() uintptr }); ok {
		return isatty.IsTerminal(fd.Fd()) || isatty.IsCygwinTerminal(fd.Fd())
	}
	return false
}
