package worker

import (
	"context"
	"fmt"
	"os"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	temporalotel "go.temporal.io/sdk/contrib/opentelemetry"
	"go.temporal.io/sdk/interceptor"
)

// Tracing modes for NewTracing.
const (
	TracingOff    = "off"
	TracingOTLP   = "otlp"
	TracingStdout = "stdout"
)

// NewTracing returns the Temporal SDK's OpenTelemetry tracing interceptor for the given mode, and a
// shutdown function that flushes spans. "off" (the default) returns no interceptor; "otlp" exports over
// OTLP/gRPC configured by the standard OTEL_EXPORTER_OTLP_* variables; "stdout" writes spans to stderr.
func NewTracing(ctx context.Context, mode string) (interceptor.Interceptor, func(context.Context) error, error) {
	noop := func(context.Context) error { return nil }
	var exp sdktrace.SpanExporter
	var err error
	switch mode {
	case "", TracingOff:
		return nil, noop, nil
	case TracingOTLP:
		exp, err = otlptracegrpc.New(ctx)
	case TracingStdout:
		exp, err = stdouttrace.New(stdouttrace.WithWriter(os.Stderr))
	default:
		return nil, noop, fmt.Errorf("unknown tracing mode %q: want %q, %q or %q", mode, TracingOff, TracingOTLP, TracingStdout)
	}
	if err != nil {
		return nil, noop, fmt.Errorf("tracing exporter (%s): %w", mode, err)
	}
	return TracingInterceptor(sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp),
		sdktrace.WithResource(resource.NewSchemaless(semconv.ServiceName("shepherd-worker")))))
}

// TracingInterceptor builds the interceptor over a tracer provider (tests pass one with a span recorder).
func TracingInterceptor(tp *sdktrace.TracerProvider) (interceptor.Interceptor, func(context.Context) error, error) {
	i, err := temporalotel.NewTracingInterceptor(temporalotel.TracerOptions{Tracer: tp.Tracer("shepherd")})
	if err != nil {
		return nil, func(context.Context) error { return nil }, err
	}
	return i, tp.Shutdown, nil
}
