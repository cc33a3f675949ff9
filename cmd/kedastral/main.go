// Command kedastral is Kedastral's one binary: the forecaster, the checks and
// the other tools are its subcommands.
package main

import (
	"fmt"
	"os"

	"github.com/alecthomas/kong"
	"github.com/go-kit/log"
)

// CLI is the command line: global flags and one struct per subcommand.
type CLI struct {
	LogConfig `embed:"" prefix:"log."`

	Forecaster ForecasterCmd `cmd:"" help:"Forecast each policy's demand and remote-write kedastral_* series into Prometheus."`
	Scaler     ScalerCmd     `cmd:"" help:"Serve KEDA's External Scaler gRPC API from the kedastral_* series in Prometheus."`
	Check      CheckCmd      `cmd:"" help:"Check configuration files, like promtool check."`
	Backtest   BacktestCmd   `cmd:"" help:"Replay a recorded series through the forecaster and compare its scaling with reactive KEDA and an oracle."`
	Version    VersionCmd    `cmd:"" help:"Print version and build information."`
}

func main() { os.Exit(runCLI(os.Args[1:])) }

func runCLI(args []string) int {
	var cli CLI
	parser, err := kong.New(&cli,
		kong.Name("kedastral"),
		kong.Description("Kedastral forecasts demand from Prometheus history and tells KEDA the replicas it will need."),
		kong.UsageOnError(),
		kong.ConfigureHelp(kong.HelpOptions{Compact: true}),
		kong.Exit(func(code int) { panic(exitCode(code)) }),
	)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	code := 0
	func() {
		defer func() {
			if r := recover(); r != nil {
				c, ok := r.(exitCode)
				if !ok {
					panic(r)
				}
				code = int(c)
			}
		}()
		ctx, err := parser.Parse(args)
		if err != nil {
			parser.Errorf("%s", err)
			code = 2
			return
		}
		logger, err := cli.LogConfig.New(os.Stderr)
		if err != nil {
			parser.Errorf("%s", err)
			code = 2
			return
		}
		ctx.BindTo(logger, (*log.Logger)(nil))
		if err := ctx.Run(); err != nil {
			var ec exitCode
			if e, ok := err.(exitError); ok {
				ec = e.code
				if e.msg != "" {
					fmt.Fprintln(os.Stderr, e.msg)
				}
			} else {
				fmt.Fprintln(os.Stderr, "kedastral:", err)
				ec = 1
			}
			code = int(ec)
		}
	}()
	return code
}

// exitCode carries kong's requested exit (after --help) out of Parse.
type exitCode int

// exitError ends a subcommand with a given code and message.
type exitError struct {
	code exitCode
	msg  string
}

func (e exitError) Error() string { return e.msg }
