package ticker_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/nats-io/nats.go"

	"github.com/lexhq/gstjobs/internal/bus"
	"github.com/lexhq/gstjobs/internal/catalog"
	"github.com/lexhq/gstjobs/internal/natsembed"
	"github.com/lexhq/gstjobs/services/ticker"
)

// A ticker in Asia/Kolkata publishes the 08:00 hearing reminders slot at 02:30 UTC.
func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "ticker-example")
	defer os.RemoveAll(dir)
	srv, err := natsembed.Start(natsembed.Config{Port: -1, StoreDir: dir})
	if err != nil {
		panic(err)
	}
	defer srv.WaitForShutdown()
	defer srv.Shutdown()
	nc, js, err := bus.Connect(ctx, srv.ClientURL(), "example", slog.New(slog.DiscardHandler))
	if err != nil {
		panic(err)
	}
	defer nc.Close()
	if err := bus.Ensure(ctx, js, bus.Options{}); err != nil {
		panic(err)
	}

	loc, _ := catalog.LoadTimezone("Asia/Kolkata")
	clock := clockwork.NewFakeClockAt(time.Date(2026, 3, 10, 2, 29, 30, 0, time.UTC))
	tk, err := ticker.New(ticker.Config{JS: js, NC: nc, Location: loc, Clock: clock, Instance: "example"})
	if err != nil {
		panic(err)
	}
	sub, _ := nc.SubscribeSync("jobs.schedule." + catalog.SendHearingReminders)
	if err := tk.Start(ctx); err != nil {
		panic(err)
	}
	defer tk.Stop()

	_ = clock.BlockUntilContext(ctx, 1) // the loop sleeps until the next slot
	clock.Advance(30 * time.Second)
	msg, err := sub.NextMsg(5 * time.Second)
	if err != nil {
		panic(err)
	}
	fmt.Println(msg.Header.Get(nats.MsgIdHdr))
	fmt.Println(string(msg.Data))
	// Output:
	// send-hearing-reminders@2026-03-10T02:30:00Z
	// {"job_name":"send-hearing-reminders","slot":"2026-03-10T02:30:00Z"}
}
