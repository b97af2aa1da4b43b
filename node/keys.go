package node

import (
	"meshell/mesh/keyring"
	"meshell/node/operator"
)

// KeyID returns the id of a cluster key given as its text, or s itself when
// s is not a key (it may be an id already): the shell names keys by id.
func KeyID(s string) string {
	if k, err := keyring.ParseKey(s); err == nil {
		return k.ID()
	}
	return s
}

// KeyEnvVar is the environment variable a cluster key may come in.
const KeyEnvVar = keyring.EnvVar

// Keyring holds a node's cluster keys, for Config.Keyring; the shell only
// passes it on.
type Keyring struct{ r *keyring.Keyring }

// LoadKeyring reads a key file (Config.Keyring, Config.KeyFile).
func LoadKeyring(file string) (*Keyring, error) { return ringOf(keyring.Load(file)) }

// KeyringFromEnv reads the keys in the value of KeyEnvVar.
func KeyringFromEnv(value string) (*Keyring, error) { return ringOf(keyring.FromEnv(value)) }

func ringOf(r *keyring.Keyring, err error) (*Keyring, error) {
	if err != nil {
		return nil, err
	}
	return &Keyring{r}, nil
}

// keys is the ring inside; nil when there is none.
func (k *Keyring) keys() *keyring.Keyring {
	if k == nil {
		return nil
	}
	return k.r
}

// NewClusterKey returns a new cluster key, as its text.
func NewClusterKey() (string, error) {
	k, err := keyring.Generate()
	if err != nil {
		return "", err
	}
	return k.Encode(), nil
}

// LoadOperators reads an operators file into the verifier of
// Config.Operators.
func LoadOperators(file string) (*operator.Verifier, error) {
	ops, err := operator.LoadOperators(file)
	if err != nil {
		return nil, err
	}
	return operator.NewVerifier(ops, operator.VerifierConfig{})
}

// LoadOperatorKey reads an operator's private key (Config.OperatorKey).
func LoadOperatorKey(file string) (*operator.PrivateKey, error) { return operator.LoadPrivateKey(file) }

// NewOperatorKey makes a key for operator name, writes its private half to
// file (mode 0600) and returns the line of an operators file that trusts it.
func NewOperatorKey(name, file string) (string, error) {
	k, err := operator.Generate(name)
	if err == nil {
		err = k.WriteFile(file)
	}
	if err != nil {
		return "", err
	}
	return k.PublicLine(), nil
}
