// deploycheck checks Cascade's deployment files without Docker or
// Kubernetes (tests/deploy, ctest label `deploy`):
//
//	helm template ... | deploycheck k8s [-known FILE]
//	docker-compose -f FILE config | deploycheck compose [-known FILE]
//
// -known names the file of environment variables each binary reads (see
// known.go). Prints one line per problem and exits 1 when there is any;
// the last line is a summary.
package main

import (
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
)

func main() {
	if len(os.Args) < 2 || (os.Args[1] != "k8s" && os.Args[1] != "compose") {
		fmt.Fprintln(os.Stderr, "usage: deploycheck k8s|compose [-known FILE] < input")
		os.Exit(2)
	}
	mode := os.Args[1]
	fs := flag.NewFlagSet(mode, flag.ExitOnError)
	knownPath := fs.String("known", "", "file of BINARY ENV lines")
	_ = fs.Parse(os.Args[2:])
	var kn known
	if *knownPath != "" {
		var err error
		if kn, err = loadKnown(*knownPath); err != nil {
			fmt.Fprintln(os.Stderr, "deploycheck:", err)
			os.Exit(2)
		}
	}
	var problems []string
	summary := ""
	total := 0
	if mode == "k8s" {
		c, err := runK8s(os.Stdin, kn)
		if err != nil {
			fmt.Fprintln(os.Stderr, "deploycheck:", err)
			os.Exit(2)
		}
		problems = c.problems
		var kinds []string
		for k, n := range c.kinds {
			kinds = append(kinds, fmt.Sprintf("%s=%d", k, n))
			total += n
		}
		sort.Strings(kinds)
		summary = fmt.Sprintf("%d objects (%s)", total, strings.Join(kinds, " "))
	} else {
		var err error
		problems, total, err = runCompose(os.Stdin, kn)
		if err != nil {
			fmt.Fprintln(os.Stderr, "deploycheck:", err)
			os.Exit(2)
		}
		summary = fmt.Sprintf("%d cascade services", total)
	}
	sort.Strings(problems)
	for _, p := range problems {
		fmt.Println(p)
	}
	fmt.Printf("deploycheck %s: %s, %d problems\n", mode, summary, len(problems))
	if len(problems) > 0 || total == 0 {
		os.Exit(1)
	}
}
