package gateway

import (
	"testing"

	"github.com/lexhq/gstjobs/internal/catalog"
)

// Every key the catalog says has items behind it has the query that lists them, and
// no query lists a key the catalog does not promise.
func TestEveryItemKeyHasItsQuery(t *testing.T) {
	for _, job := range catalog.All() {
		for _, r := range job.AllResults() {
			_, has := itemizers[job.Name][r.Key]
			if (r.Items != "") != has {
				t.Errorf("%s %s: the catalog says items %q, the gateway has a query: %v", job.Name, r.Key, r.Items, has)
			}
		}
		for key := range itemizers[job.Name] {
			if _, ok := job.ResultInfo(key); !ok {
				t.Errorf("%s: the gateway lists items of %s, which the job does not report", job.Name, key)
			}
		}
	}
	for name := range itemizers {
		if _, ok := catalog.Lookup(name); !ok {
			t.Errorf("items for unknown job %s", name)
		}
	}
}
