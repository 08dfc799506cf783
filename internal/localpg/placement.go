package localpg

import (
	"errors"
	"fmt"
	"path/filepath"
)

// Placement is where a cluster's files live, as chosen by [Place].
type Placement struct {
	// Dir is the data directory to give [Start].
	Dir string
	// Why is empty when Dir is the preferred directory, and otherwise says, in words
	// for the person running the program, why the cluster lives elsewhere.
	Why string
}

// Moved tells whether the cluster lives in the fallback directory.
func (p Placement) Moved() bool { return p.Why != "" }

// Place chooses the data directory of a cluster that belongs at preferred: preferred
// itself, unless the OS account the server runs as (postgres, when we are root, or
// the owner of a cluster already there) cannot reach it, as when it lies in a 0700
// home directory; then fallback, which
// the caller picks where that account can reach it. Whichever of the two already
// holds a cluster is kept, so that the choice made at the first start stands at
// every later one even if permissions change in between; preferred wins a tie, being
// where a person looks first. Place creates nothing: [Start] does.
func Place(preferred, fallback string) (Placement, error) {
	account, err := serverAccount()
	if err != nil {
		return Placement{}, err
	}
	return place(account, preferred, fallback)
}

// PlaceFor is [Place] for a server run as the OS user called username, whoever we
// are: it tells where the cluster would live were that user to run it.
func PlaceFor(username, preferred, fallback string) (Placement, error) {
	account, err := lookupAccount(username)
	if err != nil {
		return Placement{}, err
	}
	return place(account, preferred, fallback)
}

func place(account *osAccount, preferred, fallback string) (Placement, error) {
	preferred, err := filepath.Abs(preferred)
	if err != nil {
		return Placement{}, fmt.Errorf("localpg: data directory: %w", err)
	}
	if account == nil || fallback == "" {
		return Placement{Dir: preferred}, nil
	}
	if fallback, err = filepath.Abs(fallback); err != nil {
		return Placement{}, fmt.Errorf("localpg: data directory: %w", err)
	}
	if hasCluster(preferred) {
		// An existing cluster runs as its owner (clusterOwner): a normal user's, made
		// in their 0700 home, stays where it is when root starts it.
		if owner, err := clusterOwner(preferred, account); err == nil {
			account = owner
		}
	}
	reach := account.checkReachable(preferred)
	var unreachable *unreachableError
	if reach != nil && !errors.As(reach, &unreachable) {
		return Placement{}, reach
	}
	if reach == nil && (hasCluster(preferred) || !hasCluster(fallback)) {
		return Placement{Dir: preferred}, nil
	}
	why := "it holds the cluster made by an earlier start"
	if unreachable != nil {
		why = fmt.Sprintf("the OS user %s, which runs PostgreSQL, cannot enter %s (mode %#o)", account.name, unreachable.blocker, unreachable.mode)
	}
	return Placement{Dir: fallback, Why: why}, nil
}
