// Command rpcanchor provides the RPC anchors for meshell's job-dispatch
// throughput benchmark.
//
//	rpcanchor grpc-server --port P
//	rpcanchor raw-server  --port P
//	rpcanchor client --system grpc|raw --servers h:p1,h:p2,h:p3 \
//	    [--concurrency 256] [--duration 10s] [--payload 64] [--warmup 1s]
//
// grpc-server: gRPC-go unary Echo of raw bytes (hand-written ServiceDesc and a
// []byte codec, no protoc). raw-server: length-prefixed frames holding a
// msgpack {id, payload}; one reader and one writer goroutine per connection,
// handler inline in the reader, replies batched in a bufio.Writer and flushed
// when nothing more is queued. The client fans out round-robin over all
// servers from one process and prints one JSON line:
//
//	{"system","concurrency","payload","seconds","jobs_per_sec","p50_us","p90_us","p99_us","max_us","ok","errors"}
package main

import (
	"fmt"
	"os"
)

func usage() {
	fmt.Fprintln(os.Stderr, `usage:
  rpcanchor grpc-server --port P
  rpcanchor raw-server --port P
  rpcanchor client --system grpc|raw --servers h:p1,h:p2,h:p3 [--concurrency 256] [--duration 10s] [--payload 64] [--warmup 1s]`)
	os.Exit(2)
}

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "grpc-server":
		err = grpcServer(os.Args[2:])
	case "raw-server":
		err = rawServer(os.Args[2:])
	case "client":
		err = client(os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "rpcanchor:", err)
		os.Exit(1)
	}
}
