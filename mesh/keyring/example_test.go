package keyring_test

import (
	"context"
	"fmt"
	"net"

	"meshell/mesh/keyring"
)

// The transport wraps each connection before its own handshake: Server on an
// accepted one, Client on a dialled one, and uses the returned *Conn instead.
func Example() {
	key, _ := keyring.Generate()
	ring, _ := keyring.New(key) // in meshell: keyring.Load(path) or keyring.FromEnv(os.Getenv(keyring.EnvVar))

	dialled, accepted := net.Pipe()
	ctx := context.Background()
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ring.Server(ctx, accepted, "node-b")
		if err != nil {
			fmt.Println("refused:", keyring.Describe(err))
			accepted.Close()
			return
		}
		buf := make([]byte, 4)
		c.Read(buf)
		fmt.Printf("node-b read %q from %s\n", buf, c.PeerAlias())
	}()
	c, err := ring.Client(ctx, dialled, "node-a")
	if err != nil {
		fmt.Println("refused:", keyring.Describe(err))
		return
	}
	c.Write([]byte("join"))
	<-done
	fmt.Println("node-a is connected to", c.PeerAlias())
	// Output:
	// node-b read "join" from node-a
	// node-a is connected to node-b
}
