package main

import (
	"bufio"
	"fmt"
	"os"
	"sort"
	"strings"
)

// known maps a binary to the environment variables it reads. The file
// (tests/deploy/env_names.sh writes it from each service's
// --help-markdown) has lines "BINARY NAME"; BINARY "*" means every binary
// (the s3:// store's settings, read by the store itself).
type known map[string]map[string]bool

func loadKnown(path string) (known, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	k := known{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		if len(fields) != 2 {
			return nil, fmt.Errorf("%s:%d: want BINARY NAME", path, n)
		}
		if k[fields[0]] == nil {
			k[fields[0]] = map[string]bool{}
		}
		k[fields[0]][fields[1]] = true
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(k) < 2 {
		return nil, fmt.Errorf("%s: no binaries listed", path)
	}
	return k, nil
}

// check returns a problem for each name that binary does not read.
func (k known) check(where, binary string, names []string) []string {
	if k[binary] == nil {
		return []string{fmt.Sprintf("%s: unknown binary %s (not in the names file)", where, binary)}
	}
	var out []string
	sort.Strings(names)
	for _, n := range names {
		if !k[binary][n] && !k["*"][n] {
			out = append(out, fmt.Sprintf("%s: %s does not read %s", where, binary, n))
		}
	}
	return out
}
