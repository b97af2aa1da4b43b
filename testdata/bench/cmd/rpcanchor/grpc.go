package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// rawCodec marshals *[]byte messages as themselves.
type rawCodec struct{}

func (rawCodec) Name() string { return "raw" }

func (rawCodec) Marshal(v any) ([]byte, error) {
	b, ok := v.(*[]byte)
	if !ok {
		return nil, fmt.Errorf("rawCodec: cannot marshal %T", v)
	}
	return *b, nil
}

func (rawCodec) Unmarshal(data []byte, v any) error {
	b, ok := v.(*[]byte)
	if !ok {
		return fmt.Errorf("rawCodec: cannot unmarshal into %T", v)
	}
	*b = append((*b)[:0], data...)
	return nil
}

// echoServer is the handler interface named by the ServiceDesc.
type echoServer interface {
	Echo(ctx context.Context, in []byte) ([]byte, error)
}

type echoImpl struct{}

func (echoImpl) Echo(_ context.Context, in []byte) ([]byte, error) { return in, nil }

const echoMethod = "/bench.Echo/Echo"

var echoDesc = grpc.ServiceDesc{
	ServiceName: "bench.Echo",
	HandlerType: (*echoServer)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Echo",
		Handler: func(srv any, ctx context.Context, dec func(any) error, ic grpc.UnaryServerInterceptor) (any, error) {
			var in []byte
			if err := dec(&in); err != nil {
				return nil, err
			}
			call := func(ctx context.Context, req any) (any, error) {
				out, err := srv.(echoServer).Echo(ctx, *req.(*[]byte))
				return &out, err
			}
			if ic == nil {
				return call(ctx, &in)
			}
			return ic(ctx, &in, &grpc.UnaryServerInfo{Server: srv, FullMethod: echoMethod}, call)
		},
	}},
	Metadata: "bench.proto",
}

func grpcServer(args []string) error {
	fs := flag.NewFlagSet("grpc-server", flag.ExitOnError)
	port := fs.Int("port", 0, "TCP port on 127.0.0.1")
	fs.Parse(args)
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", *port))
	if err != nil {
		return err
	}
	s := grpc.NewServer(grpc.ForceServerCodec(rawCodec{}))
	s.RegisterService(&echoDesc, echoImpl{})
	go func() {
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
		<-ch
		s.Stop()
	}()
	return s.Serve(ln)
}

// grpcCaller is one ClientConn per server; HTTP/2 multiplexes the in-flight
// calls over it.
type grpcCaller struct{ cc *grpc.ClientConn }

func newGRPCCaller(addr string) (*grpcCaller, error) {
	cc, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{})))
	if err != nil {
		return nil, err
	}
	cc.Connect()
	return &grpcCaller{cc: cc}, nil
}

func (g *grpcCaller) call(ctx context.Context, req []byte, resp *[]byte) error {
	return g.cc.Invoke(ctx, echoMethod, &req, resp)
}

func (g *grpcCaller) close() { g.cc.Close() }
