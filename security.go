package main

import (
	"flag"
	"fmt"
	"io"
	"os"

	"meshell/node"
)

// security loads the cluster keys (--key-file, else MESHELL_KEY), the
// operators file and this shell's operator key into cfg.
func (o *options) security(cfg *node.Config) error {
	switch env := os.Getenv(node.KeyEnvVar); {
	case o.keyFile != "":
		ring, err := node.LoadKeyring(o.keyFile)
		if err != nil {
			return fmt.Errorf("--key-file: %w", err)
		}
		cfg.Keyring, cfg.KeyFile = ring, o.keyFile
	case env != "":
		ring, err := node.KeyringFromEnv(env)
		if err != nil {
			return fmt.Errorf("%s: %w", node.KeyEnvVar, err)
		}
		cfg.Keyring = ring
	}
	cfg.Insecure = o.insecure
	if o.operatorsFile != "" {
		var err error
		if cfg.Operators, err = node.LoadOperators(o.operatorsFile); err != nil {
			return fmt.Errorf("--operators: %w", err)
		}
	}
	if o.operatorKey != "" {
		k, err := node.LoadOperatorKey(o.operatorKey)
		if err != nil {
			return fmt.Errorf("--operator-key: %w", err)
		}
		cfg.OperatorKey = k
	}
	return nil
}

// keygen prints a new cluster key, or with --operator NAME --out FILE writes
// an operator's private key and prints the line for an operators file.
func keygen(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("meshell keygen", flag.ContinueOnError)
	name := fs.String("operator", "", "make an operator key for NAME instead of a cluster key")
	out := fs.String("out", "", "with --operator: write the private key to this file (mode 0600)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: meshell keygen [--operator NAME --out FILE]\n  print a new cluster key, or make an operator key")
		printDefaults(fs.Output(), fs)
	}
	if status, ok := parseSub(fs, args, stdout, stderr); !ok {
		return status
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "error: unexpected argument %q: meshell keygen [--operator NAME --out FILE]\n", fs.Arg(0))
		return 2
	}
	if *name == "" {
		if *out != "" {
			fmt.Fprintln(stderr, "error: --out is for operator keys; a cluster key is printed: meshell keygen > cluster.key && chmod 600 cluster.key")
			return 2
		}
		k, err := node.NewClusterKey()
		if err != nil {
			fmt.Fprintf(stderr, "error: %v\n", err)
			return 1
		}
		fmt.Fprintln(stdout, k)
		return 0
	}
	if *out == "" {
		fmt.Fprintln(stderr, "error: --operator needs --out FILE for the private key")
		return 2
	}
	line, err := node.NewOperatorKey(*name, *out)
	if err != nil {
		fmt.Fprintf(stderr, "error: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, line)
	return 0
}
