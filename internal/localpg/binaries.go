package localpg

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// systemBinaries is where Debian and Ubuntu install the server binaries, one
// directory per major version, none of them on PATH.
const systemBinaries = "/usr/lib/postgresql/*/bin"

// FindBinaries returns the directory holding the postgres and initdb binaries: the
// one of postgres or pg_ctl on PATH if any, else the newest version under
// /usr/lib/postgresql. A PATH entry wins so that a developer can pick a version.
func FindBinaries() (dir string, err error) {
	return findBinaries(systemBinaries)
}

func findBinaries(systemGlob string) (string, error) {
	for _, name := range []string{"postgres", "pg_ctl"} {
		if p, err := exec.LookPath(name); err == nil {
			// Follow symlinks (Homebrew, alternatives) to where initdb sits beside it.
			if real, err := filepath.EvalSymlinks(p); err == nil && hasServerBinaries(filepath.Dir(real)) {
				return filepath.Dir(real), nil
			}
			if hasServerBinaries(filepath.Dir(p)) {
				return filepath.Dir(p), nil
			}
		}
	}
	dirs, _ := filepath.Glob(systemGlob)
	// Newest first, comparing versions as numbers: 9.6 < 10 < 15.
	slices.SortFunc(dirs, func(a, b string) int {
		return compareVersions(filepath.Base(filepath.Dir(b)), filepath.Base(filepath.Dir(a)))
	})
	for _, d := range dirs {
		if hasServerBinaries(d) {
			return d, nil
		}
	}
	return "", ErrBinariesNotFound
}

func hasServerBinaries(dir string) bool {
	for _, name := range []string{"postgres", "initdb"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			return false
		}
	}
	return true
}

func compareVersions(a, b string) int {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := range max(len(as), len(bs)) {
		var x, y int
		if i < len(as) {
			x, _ = strconv.Atoi(as[i])
		}
		if i < len(bs) {
			y, _ = strconv.Atoi(bs[i])
		}
		if x != y {
			return x - y
		}
	}
	return 0
}
