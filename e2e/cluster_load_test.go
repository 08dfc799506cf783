package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexhq/gstjobs/internal/bus"
	"github.com/lexhq/gstjobs/internal/catalog"
	"github.com/lexhq/gstjobs/internal/events"
	"github.com/lexhq/gstjobs/internal/natsauth"
)

// sentTrigger is one trigger the load sent and what became of it.
type sentTrigger struct {
	ID  string // the trigger's id: its message id, or the id the gateway answered with
	Job string
	Via string // nats (a developer's client), nats-cli, api
	// SentAt is the first attempt; StoredAt when JetStream confirmed it (NATS) or the
	// gateway answered (API); Attempts how many publishes it took.
	SentAt, StoredAt time.Time
	Attempts         int
	// The gateway's answer: HTTP code, its run (202) or whether it was stored (503).
	Code   int
	RunID  string
	Stored string
	Answer string
	Err    string
}

// clusterLoad sends a few triggers a second across the five jobs for as long as it
// runs: a developer's client publishing to jobs.trigger.<job> (every tenth with the
// nats CLI), and people pressing Run Now on either gateway. A publish JetStream does
// not confirm is sent again with the same message id until it is confirmed, as a
// careful client does: JetStream keeps one copy. A Run Now whose gateway is down is
// sent to the other one, as a load balancer would.
type clusterLoad struct {
	c       *clusterSystem
	natsCLI string
	stop    chan struct{}
	wg      sync.WaitGroup

	mu   sync.Mutex
	sent []*sentTrigger
}

// The people who press Run Now, each on both gateways, no more often than the
// gateways allow a person (3 at once, then one every 12 s per gateway). The operator
// is kept for the test's own presses.
var loadPeople = []string{"admin", "partner", "iyer-admin"}

func startLoad(c *clusterSystem, natsCLI string) *clusterLoad {
	l := &clusterLoad{c: c, natsCLI: natsCLI, stop: make(chan struct{})}
	l.wg.Add(2)
	go l.every(400*time.Millisecond, func(n int) {
		tr := &sentTrigger{ID: fmt.Sprintf("cluster-load-%d", n), Job: catalog.Names()[n%len(catalog.Names())], Via: "nats"}
		if n%10 == 9 && natsCLI != "" {
			tr.Via = "nats-cli"
		}
		l.publish(tr)
	})
	go l.every(2500*time.Millisecond, func(n int) {
		who, gw := loadPeople[n%len(loadPeople)], (n/len(loadPeople))%2
		l.runNow(&sentTrigger{Job: catalog.Names()[(n*3)%len(catalog.Names())], Via: "api"}, who, gw)
	})
	return l
}

// every calls send in a goroutine of its own every d until the load stops, so that a
// slow answer does not slow the load.
func (l *clusterLoad) every(d time.Duration, send func(n int)) {
	defer l.wg.Done()
	t := time.NewTicker(d)
	defer t.Stop()
	for n := 0; ; n++ {
		select {
		case <-l.stop:
			return
		case <-t.C:
		}
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			send(n)
		}()
	}
}

func (l *clusterLoad) record(tr *sentTrigger) {
	l.mu.Lock()
	l.sent = append(l.sent, tr)
	l.mu.Unlock()
}

// publish sends a developer's trigger until JetStream confirms it.
func (l *clusterLoad) publish(tr *sentTrigger) {
	tr.SentAt = time.Now()
	body := fmt.Sprintf(`{"reason":"cluster load %s","requested_by":"cluster-test"}`, tr.ID)
	giveUp := time.Now().Add(3 * time.Minute)
	for {
		tr.Attempts++
		var err error
		if tr.Via == "nats-cli" {
			dev := l.c.topo.NATS.Credentials(natsauth.Developer)
			cmd := exec.Command(l.natsCLI, "--server", l.c.topo.NATS.URL(), "--user", dev.User, "--password", dev.Password, "--timeout", "1s",
				"pub", "--jetstream", "--header", "Nats-Msg-Id:"+tr.ID, events.TriggerSubject(tr.Job), body)
			if out, cerr := cmd.CombinedOutput(); cerr != nil {
				err = fmt.Errorf("%v: %s", cerr, out)
			}
		} else {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_, err = l.c.js.Publish(ctx, events.TriggerSubject(tr.Job), []byte(body), jetstream.WithMsgID(tr.ID))
			cancel()
		}
		if err == nil {
			tr.StoredAt = time.Now()
			break
		}
		tr.Err = err.Error()
		if time.Now().After(giveUp) {
			break
		}
		_ = bus.Pause(context.Background())
	}
	l.record(tr)
}

// runNow presses Run Now as who on gateway gw, or on the other one if gw is down.
func (l *clusterLoad) runNow(tr *sentTrigger, who string, gw int) {
	tr.SentAt = time.Now()
	gws := l.c.topo.Gateways()
	for try := range len(gws) {
		tr.Attempts++
		code, body, err := l.c.call(gws[(gw+try)%len(gws)], who, "POST", "/api/jobs/"+tr.Job+"/run", `{"reason":"cluster load"}`)
		if err != nil {
			tr.Err = err.Error()
			continue
		}
		var ans struct {
			TriggerID string `json:"trigger_id"`
			RunID     string `json:"run_id"`
			Stored    string `json:"stored"`
			Error     string `json:"error"`
		}
		_ = json.Unmarshal(body, &ans)
		tr.StoredAt, tr.Code, tr.ID, tr.RunID, tr.Stored, tr.Answer, tr.Err = time.Now(), code, ans.TriggerID, ans.RunID, ans.Stored, ans.Error, ""
		break
	}
	l.record(tr)
}

// finish stops sending and waits for every trigger in flight to be confirmed.
func (l *clusterLoad) finish() []*sentTrigger {
	close(l.stop)
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.sent)
}

// span is the time a trigger waited: from its first attempt to the end of the run it
// joined.
type span struct {
	job      string
	from, to time.Time
}

// longestGap is the longest time within [from, to] during which some trigger waited
// and no run finished: how long work stood still.
func longestGap(waits []span, finishes []time.Time, from, to time.Time) (gap time.Duration, at time.Time) {
	const step = 20 * time.Millisecond
	n := int(to.Sub(from)/step) + 1
	if n <= 0 {
		return 0, time.Time{}
	}
	waiting := make([]int, n+1)
	for _, w := range waits {
		a, b := max(int(w.from.Sub(from)/step), 0), min(int(w.to.Sub(from)/step), n)
		if a < b {
			waiting[a]++
			waiting[b]--
		}
	}
	finished := make([]bool, n)
	for _, f := range finishes {
		if i := int(f.Sub(from) / step); i >= 0 && i < n {
			finished[i] = true
		}
	}
	run, depth := 0, 0
	for i := range n {
		depth += waiting[i]
		if depth > 0 && !finished[i] {
			run++
			if d := time.Duration(run) * step; d > gap {
				gap, at = d, from.Add(time.Duration(i-run+1)*step)
			}
		} else {
			run = 0
		}
	}
	return gap, at
}
