package natsauth_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/lexhq/gstjobs/internal/bus"
	"github.com/lexhq/gstjobs/internal/catalog"
	"github.com/lexhq/gstjobs/internal/events"
	"github.com/lexhq/gstjobs/internal/natsauth"
	"github.com/lexhq/gstjobs/internal/natstest"
	"github.com/lexhq/gstjobs/internal/worker"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// nats-server and nats.go keep a few process-wide goroutines alive.
		goleak.IgnoreAnyFunction("github.com/nats-io/nats-server/v2/server.(*Server).Start.func1"),
		goleak.IgnoreTopFunction("time.Sleep"),
		goleak.IgnoreAnyFunction("github.com/nats-io/nats-server/v2/server.ipQueue.pop"),
	)
}

// startService runs the jobs of a job service on the worker runtime (each job reports
// done), connected as the service's own user: every permission the server refuses it
// fails the test (natstest.Server.ConnectAs).
func startService(t *testing.T, srv *natstest.Server, service string) {
	t.Helper()
	nc, js := srv.ConnectAs(t, service)
	if err := natsauth.CheckDeclared(context.Background(), js, service); err != nil {
		t.Fatalf("%s: %v", service, err)
	}
	jobs := map[string]worker.Func{}
	for _, j := range catalog.JobsOf(service) {
		jobs[j] = func(ctx context.Context, run worker.Run) (worker.Report, error) {
			return worker.Report{Results: map[string]any{"done": 1}}, nil
		}
	}
	w, err := worker.New(worker.Config{NC: nc, JS: js, Jobs: jobs, ShutdownGrace: 2 * time.Second, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(context.Background()); err != nil {
		t.Fatalf("%s: %v", service, err)
	}
	t.Cleanup(w.Stop)
}

func nextResult(t *testing.T, ch <-chan *nats.Msg, job string) events.Result {
	t.Helper()
	timeout := time.After(15 * time.Second)
	for {
		select {
		case m := <-ch:
			if events.JobFromSubject(m.Subject) != job {
				continue
			}
			var r events.Result
			if err := json.Unmarshal(m.Data, &r); err != nil {
				t.Fatalf("result of %s is not JSON: %v", job, err)
			}
			return r
		case <-timeout:
			t.Fatalf("no result of %s within 15s", job)
		}
	}
}

// What is tried: every job service runs as its own user, on a server with the
// system's users, and a developer's client without credentials triggers each job on
// jobs.trigger.<job>, watching jobs.> and reading JetStream as the README's looks do.
// What must hold: every job runs, the developer sees its statuses and result and may
// read the stream, its consumers and the runs bucket, and the server refuses neither
// the services nor the developer anything.
func TestServicesRunTheirJobsAndADeveloperTriggersWatchesAndReads(t *testing.T) {
	srv := natstest.StartWithAuth(t)
	for _, svc := range catalog.Services() {
		startService(t, srv, svc)
	}
	dev, devJS := srv.ConnectAs(t, natsauth.Developer)
	watched := natstest.Collect(t, dev, "jobs.>")
	ctx := context.Background()
	for _, j := range catalog.Names() {
		if err := dev.Publish(events.TriggerSubject(j), []byte(`{"reason":"auth test","requested_by":"dev@firm"}`)); err != nil {
			t.Fatalf("developer trigger of %s: %v", j, err)
		}
		// The intake's queued status and the executor's running one are published by
		// different goroutines, in either order, and either may follow the result.
		var queued, running bool
		var r events.Result
		for !queued || !running || r.JobName == "" {
			select {
			case m := <-watched:
				if events.JobFromSubject(m.Subject) != j {
					continue
				}
				switch {
				case strings.HasPrefix(m.Subject, events.PrefixStatus):
					queued = queued || strings.Contains(string(m.Data), `"state":"queued"`)
					running = running || strings.Contains(string(m.Data), `"state":"running"`)
				case strings.HasPrefix(m.Subject, events.PrefixResult):
					if err := json.Unmarshal(m.Data, &r); err != nil {
						t.Fatal(err)
					}
				}
			case <-time.After(15 * time.Second):
				t.Fatalf("the developer saw on jobs.> within 15s: queued %v, running %v, result %q; want all three for %s", queued, running, r.Status, j)
			}
		}
		if r.Status != events.StatusSuccess || r.RequestedBy != "dev@firm" {
			t.Errorf("%s: result %s requested by %q; want success requested by dev@firm", j, r.Status, r.RequestedBy)
		}
	}

	// The README's looks: nats stream info JOBS, nats consumer info JOBS run-…, nats
	// kv get jobs_runs <job>.
	if _, err := devJS.Stream(ctx, bus.StreamJobs); err != nil {
		t.Errorf("developer: stream info %s: %v", bus.StreamJobs, err)
	}
	if _, err := devJS.Consumer(ctx, bus.StreamJobs, bus.RunConsumer(catalog.CheckSLAAndOverdue)); err != nil {
		t.Errorf("developer: consumer info: %v", err)
	}
	kv, err := devJS.KeyValue(ctx, bus.BucketRuns)
	if err != nil {
		t.Fatalf("developer: open %s: %v", bus.BucketRuns, err)
	}
	if _, err := kv.Get(ctx, catalog.CheckSLAAndOverdue); err != nil {
		t.Errorf("developer: kv get %s %s: %v", bus.BucketRuns, catalog.CheckSLAAndOverdue, err)
	}
}

// attempt is one thing a user tries that the server must refuse.
type attempt struct {
	what string
	// do tries it; the server's refusal arrives asynchronously.
	do func(ctx context.Context, nc *nats.Conn, js jetstream.JetStream) error
	// refused is what the server's permissions violation names.
	refused string
}

func publish(subject, body string) func(context.Context, *nats.Conn, jetstream.JetStream) error {
	return func(_ context.Context, nc *nats.Conn, _ jetstream.JetStream) error {
		return nc.Publish(subject, []byte(body))
	}
}

// request is a JetStream API call, or a publish whose answer is awaited (a KV put):
// the server refuses it and no answer comes.
func request(subject, body string) func(context.Context, *nats.Conn, jetstream.JetStream) error {
	return func(ctx context.Context, nc *nats.Conn, _ jetstream.JetStream) error {
		ctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		_, err := nc.RequestWithContext(ctx, subject, []byte(body))
		return err
	}
}

// refuse runs each attempt as user and checks that the server refuses it with a
// permissions violation naming the subject, and that nothing reached a subscriber of
// the subject: the superuser watches every subject, and a message the user may
// publish, sent after each attempt, must arrive before anything the attempt sent.
func refuse(t *testing.T, srv *natstest.Server, user string, marker string, attempts []attempt) {
	t.Helper()
	nc, js, refusals := srv.ConnectRefusable(t, user)
	everything := natstest.Collect(t, srv.NC, ">")
	ctx := context.Background()
	for _, a := range attempts {
		t.Run(user+" "+a.what, func(t *testing.T) {
			_ = a.do(ctx, nc, js) // the outcome is the server's refusal, below
			select {
			case err := <-refusals:
				if !errors.Is(err, nats.ErrPermissionViolation) || !strings.Contains(err.Error(), `"`+a.refused+`"`) {
					t.Errorf("%s tried to %s: the server said %v; want a permissions violation for %q", user, a.what, err, a.refused)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("%s tried to %s (%s): the server did not refuse it within 5s", user, a.what, a.refused)
			}
			if err := nc.Publish(marker, nil); err != nil {
				t.Fatal(err)
			}
			for {
				select {
				case m := <-everything:
					if m.Subject == marker {
						return
					}
					if m.Subject == a.refused {
						t.Fatalf("%s tried to %s: refused, yet a subscriber received it: %s", user, a.what, m.Data)
					}
				case <-time.After(5 * time.Second):
					t.Fatalf("the marker %s that %s published after the attempt did not arrive", marker, user)
				}
			}
		})
	}
}

const (
	sla       = catalog.CheckSLAAndOverdue
	reminders = catalog.SendHearingReminders
	analytics = catalog.CaptureAnalyticsSnapshot
)

// What is tried: everything an attacker who reaches the NATS port without credentials
// (the developer user) could do to make the system lie or stop: a forged success of
// the hearing reminders dated 2099 (an audit row and the card's last run), a forged
// queued status in a person's name (a trigger row), a run order, slices, a schedule
// slot, a Run Now on the gateway's .api subject naming a firm's person, a pause written
// to jobs_config, deleting, purging or reconfiguring a stream, deleting, creating or
// pulling from a consumer, acking a service's message, answering a service's request,
// and joining the gateway's queue group for unknown jobs. What must hold: the server
// refuses each, naming the subject, and no subscriber receives it; nothing was stored.
func TestTheDeveloperUserMayNotActForTheServices(t *testing.T) {
	srv := natstest.StartWithAuth(t)
	forged := `{"job_name":"send-hearing-reminders","status":"success","run_id":"forged","finished_at":"2099-01-01T00:00:00Z","results":{"notifications_sent":0}}`
	refuse(t, srv, natsauth.Developer, "jobs.trigger.marker", []attempt{
		{"publish a result", publish(events.ResultSubject(reminders), forged), events.ResultSubject(reminders)},
		{"publish a status", publish(events.StatusSubject(sla), `{"run_id":"x","job_name":"check-sla-and-overdue","state":"queued","source":"api","requested_by":"Priya Mehta"}`), events.StatusSubject(sla)},
		{"publish slices", publish(events.SlicesSubject(sla), `{}`), events.SlicesSubject(sla)},
		{"publish a run order", publish(events.RunSubject(sla), `{"run_id":"x","job_name":"check-sla-and-overdue"}`), events.RunSubject(sla)},
		{"publish a schedule slot", publish(events.ScheduleSubject(sla), `{}`), events.ScheduleSubject(sla)},
		{"Run Now as a firm's person", publish(events.APITriggerSubject(sla), `{"reason":"x","requester":{"tenant_id":"t","profile_id":"p","name":"Priya Mehta"}}`), events.APITriggerSubject(sla)},
		{"pause a job in jobs_config", func(ctx context.Context, _ *nats.Conn, js jetstream.JetStream) error {
			kv, err := js.KeyValue(ctx, bus.BucketConfig)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
			defer cancel()
			_, err = kv.Put(ctx, sla, []byte(`{"paused":true}`))
			return err
		}, "$KV.jobs_config." + sla},
		{"write a run record", request("$KV.jobs_runs."+sla, `{}`), "$KV.jobs_runs." + sla},
		{"delete the JOBS stream", request("$JS.API.STREAM.DELETE.JOBS", ""), "$JS.API.STREAM.DELETE.JOBS"},
		{"purge the JOBS stream", request("$JS.API.STREAM.PURGE.JOBS", ""), "$JS.API.STREAM.PURGE.JOBS"},
		{"reconfigure JOBS_EVENTS", request("$JS.API.STREAM.UPDATE.JOBS_EVENTS", `{"name":"JOBS_EVENTS","subjects":["nothing"]}`), "$JS.API.STREAM.UPDATE.JOBS_EVENTS"},
		{"delete a message", request("$JS.API.STREAM.MSG.DELETE.JOBS", `{"seq":1}`), "$JS.API.STREAM.MSG.DELETE.JOBS"},
		{"delete the gateway's consumer", request("$JS.API.CONSUMER.DELETE.JOBS_EVENTS.gateway-events", ""), "$JS.API.CONSUMER.DELETE.JOBS_EVENTS.gateway-events"},
		{"create a consumer that takes run orders", request("$JS.API.CONSUMER.CREATE.JOBS.thief.jobs.run.x", `{"stream_name":"JOBS","config":{"name":"thief","filter_subject":"jobs.run.x","ack_policy":"none"}}`), "$JS.API.CONSUMER.CREATE.JOBS.thief.jobs.run.x"},
		{"pull a service's run orders", request("$JS.API.CONSUMER.MSG.NEXT.JOBS."+bus.RunConsumer(sla), `{"batch":1}`), "$JS.API.CONSUMER.MSG.NEXT.JOBS." + bus.RunConsumer(sla)},
		{"ack a service's message", publish("$JS.ACK.JOBS."+bus.TriggerConsumer(sla)+".1.1.1.1.0", "+TERM"), "$JS.ACK.JOBS." + bus.TriggerConsumer(sla) + ".1.1.1.1.0"},
		{"answer a service's request", publish("_INBOX.forged.reply", `{"stream":"KV_jobs_runs","seq":1}`), "_INBOX.forged.reply"},
		{"join the gateway's queue for unknown jobs", func(_ context.Context, nc *nats.Conn, _ jetstream.JetStream) error {
			_, err := nc.QueueSubscribe("jobs.trigger.>", "gateway-unknown-jobs", func(*nats.Msg) {})
			return err
		}, "jobs.trigger.>"},
	})

	// Nothing was stored: no forged result, run order or pause.
	ctx := context.Background()
	events2, err := srv.JS.Stream(ctx, bus.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	if m, err := events2.GetLastMsgForSubject(ctx, events.ResultSubject(reminders)); !errors.Is(err, jetstream.ErrMsgNotFound) {
		t.Errorf("JOBS_EVENTS holds a result of %s after the refusals: %v %v", reminders, m, err)
	}
	jobsStream, err := srv.JS.Stream(ctx, bus.StreamJobs)
	if err != nil {
		t.Fatal(err)
	}
	if info, err := jobsStream.Info(ctx); err != nil || info.State.Msgs != 0 {
		t.Errorf("JOBS holds %d messages after the refusals (%v); want none", info.State.Msgs, err)
	}
	kv, err := srv.JS.KeyValue(ctx, bus.BucketConfig)
	if err != nil {
		t.Fatal(err)
	}
	if e, err := kv.Get(ctx, sla); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Errorf("jobs_config holds %s after the refusal: %v %v", sla, e, err)
	}
}

// What is tried: each service's user doing what another service does: the analytics
// user publishing the hearing reminders' result, the sla user a status of the
// analytics job, reminders writing the SLA check's run record or pulling its run
// orders, the gateway publishing a real job's result or a developer's trigger, the
// ticker sending a run order or writing jobs_config, the setup user publishing a
// trigger or deleting a stream, and any service declaring (declaration is the setup
// user's). What must hold: the server refuses each, naming the subject, and no
// subscriber receives it.
func TestEachServiceUserStaysInItsLane(t *testing.T) {
	srv := natstest.StartWithAuth(t)
	// Each user's marker is a subject it may publish.
	refuse(t, srv, natsauth.Analytics, events.StatusSubject(analytics), []attempt{
		{"publish the hearing reminders' result", publish(events.ResultSubject(reminders), `{"status":"success"}`), events.ResultSubject(reminders)},
		{"publish the SLA check's run order", publish(events.RunSubject(sla), `{}`), events.RunSubject(sla)},
		{"trigger a job", publish(events.TriggerSubject(sla), `{}`), events.TriggerSubject(sla)},
		{"declare a consumer", request("$JS.API.CONSUMER.CREATE.JOBS."+bus.RunConsumer(analytics)+".jobs.run."+analytics, `{}`), "$JS.API.CONSUMER.CREATE.JOBS." + bus.RunConsumer(analytics) + ".jobs.run." + analytics},
		{"update the JOBS stream", request("$JS.API.STREAM.UPDATE.JOBS", `{}`), "$JS.API.STREAM.UPDATE.JOBS"},
	})
	refuse(t, srv, natsauth.SLA, events.StatusSubject(sla), []attempt{
		{"publish the analytics job's status", publish(events.StatusSubject(analytics), `{}`), events.StatusSubject(analytics)},
		{"write jobs_config", request("$KV.jobs_config."+sla, `{"paused":true}`), "$KV.jobs_config." + sla},
	})
	refuse(t, srv, natsauth.Reminders, events.StatusSubject(reminders), []attempt{
		{"write the SLA check's run record", request("$KV.jobs_runs."+sla, `{}`), "$KV.jobs_runs." + sla},
		{"pull the SLA check's run orders", request("$JS.API.CONSUMER.MSG.NEXT.JOBS."+bus.RunConsumer(sla), `{"batch":1}`), "$JS.API.CONSUMER.MSG.NEXT.JOBS." + bus.RunConsumer(sla)},
	})
	refuse(t, srv, natsauth.Gateway, events.APITriggerSubject(sla), []attempt{
		{"publish a real job's result", publish(events.ResultSubject(sla), `{"status":"success"}`), events.ResultSubject(sla)},
		{"trigger as a developer", publish(events.TriggerSubject(sla), `{}`), events.TriggerSubject(sla)},
		{"publish a status", publish(events.StatusSubject(sla), `{}`), events.StatusSubject(sla)},
		{"write a run record", request("$KV.jobs_runs."+sla, `{}`), "$KV.jobs_runs." + sla},
	})
	refuse(t, srv, natsauth.Ticker, events.ScheduleSubject(sla), []attempt{
		{"send a run order", publish(events.RunSubject(sla), `{}`), events.RunSubject(sla)},
		{"publish a result", publish(events.ResultSubject(sla), `{}`), events.ResultSubject(sla)},
		{"write jobs_config", request("$KV.jobs_config."+sla, `{"paused":true}`), "$KV.jobs_config." + sla},
	})
	refuse(t, srv, natsauth.Setup, "$JS.API.INFO", []attempt{
		{"publish a trigger", publish(events.TriggerSubject(sla), `{}`), events.TriggerSubject(sla)},
		{"delete the JOBS stream", request("$JS.API.STREAM.DELETE.JOBS", ""), "$JS.API.STREAM.DELETE.JOBS"},
		{"read a message", request("$JS.API.STREAM.MSG.GET.JOBS", `{"seq":1}`), "$JS.API.STREAM.MSG.GET.JOBS"},
	})
}

// What is tried: a service starts before the setup user has declared anything. What
// must hold: it says what is missing and how to declare it, at once.
func TestAServiceStartedBeforeTheDeclarationsSaysWhatIsMissing(t *testing.T) {
	srv := natstest.StartWithAuth(t)
	ctx := context.Background()
	_, setupJS := srv.ConnectAs(t, natsauth.Setup)
	// Remove what the setup user declared, with the superuser's rights.
	if err := srv.JS.DeleteConsumer(ctx, bus.StreamJobs, bus.RunConsumer(sla)); err != nil {
		t.Fatal(err)
	}
	if err := srv.JS.DeleteKeyValue(ctx, bus.BucketConfig); err != nil {
		t.Fatal(err)
	}
	_, js := srv.ConnectAs(t, natsauth.SLA)
	err := natsauth.CheckDeclared(ctx, js, natsauth.SLA)
	for _, want := range []string{"consumer " + bus.RunConsumer(sla) + " of stream JOBS", "bucket " + bus.BucketConfig, "natsadmin declare"} {
		if !errors.Is(err, bus.ErrNotDeclared) || !strings.Contains(fmt.Sprint(err), want) {
			t.Fatalf("CheckDeclared = %v; want ErrNotDeclared naming %q", err, want)
		}
	}
	if err := bus.Ensure(ctx, setupJS, bus.Options{}); err != nil {
		t.Fatalf("the setup user declares again: %v", err)
	}
	if err := natsauth.CheckDeclared(ctx, js, natsauth.SLA); err != nil {
		t.Fatalf("after the declarations: %v", err)
	}
}

// Every user has permissions, and only the ones the README's table lists.
func TestUsers(t *testing.T) {
	for _, u := range natsauth.Users() {
		p := natsauth.Permissions(u)
		if p == nil || p.Publish == nil || len(p.Publish.Allow) == 0 || p.Subscribe == nil || len(p.Subscribe.Allow) == 0 {
			t.Errorf("%s has no permissions: %+v", u, p)
		}
	}
	if natsauth.Permissions("root") != nil {
		t.Error("an unknown user has permissions")
	}
	for _, svc := range catalog.Services() {
		if len(catalog.JobsOf(svc)) == 0 {
			t.Errorf("the catalog gives the %s service no jobs", svc)
		}
	}
	for _, j := range catalog.All() {
		if len(catalog.JobsOf(j.Service)) == 0 {
			t.Errorf("job %s: service %q is not a job service", j.Name, j.Service)
		}
	}
}
