// Command demo-service runs one version of the demo service that the local fleet controller starts for
// canary releases: GET / (work with configurable latency and error rate), /healthz and /metrics.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/shepherd-release/shepherd/demoservice"
)

func main() {
	var cfg demoservice.Config
	flag.StringVar(&cfg.Listen, "listen", demoservice.DefaultListen, "address to listen on")
	flag.StringVar(&cfg.Service, "service", "", "service name in metric labels and responses (required)")
	flag.StringVar(&cfg.Version, "version", "", "version name in metric labels and responses (required)")
	flag.Float64Var(&cfg.ErrorRate, "error-rate", 0, "probability in [0, 1] that GET / answers 500")
	flag.DurationVar(&cfg.Latency, "latency", 0, "mean latency of GET /, a Go duration such as 50ms")
	flag.StringVar(&cfg.FlagFile, "flag-file", "", "optional flagd-format JSON flag file, re-read periodically")
	flag.Parse()
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := demoservice.Run(ctx, cfg); err != nil {
		stop()
		fmt.Fprintln(os.Stderr, "demo-service:", err)
		os.Exit(1)
	}
}
