#!/usr/bin/env python3
"""Runs every ctest of a label (default `unit`) under valgrind memcheck.

    tests/harness/memcheck.py BUILD_DIR [LABEL]

Each test runs with its own ctest command, environment and working
directory; it fails if the test fails, valgrind finds an error, or memory is
definitely or indirectly lost. VALGRIND_JOBS (default 2) run at once; logs
go to BUILD_DIR/memcheck/<test>.log. tests/harness/valgrind.supp is used
when present. The longest suites start first (the last run's times, kept in
BUILD_DIR/memcheck/times.json, else SLOW_FIRST), so that the short ones
fill in around them. Ends with the line `memcheck: N passed, M failed`.
"""
import concurrent.futures
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TIMEOUT_S = int(os.environ.get("VALGRIND_TIMEOUT", "1800"))
# Seconds under valgrind of the suites that take a minute or more (2-core
# VM, 2026-11-26, loaded): the order of a first run, before times.json
# exists. With two jobs, one of these starting last would run alone.
SLOW_FIRST = {"test_common_pool": 115, "test_kernels_mixture": 100,
              "test_gates_profile": 73, "test_kernels_gen": 50}


def tests_of(build, label):
    out = subprocess.run(["ctest", "--test-dir", build, "-L", label,
                          "--show-only=json-v1"], check=True,
                         capture_output=True, text=True).stdout
    for t in json.loads(out)["tests"]:
        props = {p["name"]: p["value"] for p in t.get("properties", [])}
        # ctest leaves out "command" when the executable was not built.
        yield t["name"], t.get("command"), props


def load_times(path):
    try:
        with open(path) as fh:
            times = json.load(fh)
        return {k: float(v) for k, v in times.items()}
    except (OSError, ValueError, TypeError, AttributeError):
        return {}


def longest_first(tests, times):
    """Known-long suites first; the others keep ctest's order."""
    def cost(t):
        return times.get(t[0], SLOW_FIRST.get(t[0], 0.0))
    return sorted(tests, key=cost, reverse=True)


def run_one(build, name, command, props):
    logdir = os.path.join(build, "memcheck")
    log = os.path.join(logdir, name + ".log")
    if not command:
        with open(log, "w") as fh:
            fh.write(f"{name}: test executable not built\n")
        open(log + ".out", "w").close()
        return name, "not built", log, 0.0
    env = dict(os.environ)
    for kv in props.get("ENVIRONMENT", []):
        k, _, v = kv.partition("=")
        env[k] = v
    # Check suites must stay in one process so valgrind sees all of it.
    env.setdefault("CK_FORK", "no")
    cmd = ["valgrind", "--log-file=" + log, "--error-exitcode=99",
           "--leak-check=full", "--show-leak-kinds=definite,indirect",
           "--errors-for-leak-kinds=definite,indirect", "--num-callers=30"]
    supp = os.path.join(HERE, "valgrind.supp")
    if os.path.exists(supp):
        cmd.append("--suppressions=" + supp)
    cmd += command
    start = time.monotonic()
    with open(log + ".out", "wb") as out:
        try:
            rc = subprocess.call(cmd, cwd=props.get("WORKING_DIRECTORY", build),
                                 env=env, stdout=out, stderr=subprocess.STDOUT,
                                 timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            rc = "timeout"
    return name, rc, log, time.monotonic() - start


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    build = os.path.abspath(sys.argv[1])
    label = sys.argv[2] if len(sys.argv) > 2 else "unit"
    os.makedirs(os.path.join(build, "memcheck"), exist_ok=True)
    times_path = os.path.join(build, "memcheck", "times.json")
    times = load_times(times_path)
    tests = longest_first(list(tests_of(build, label)), times)
    if not tests:
        print(f"memcheck: no tests with label {label} in {build}",
              file=sys.stderr)
        return 1
    jobs = int(os.environ.get("VALGRIND_JOBS", "2"))
    passed = failed = 0
    with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
        futs = [pool.submit(run_one, build, *t) for t in tests]
        for f in concurrent.futures.as_completed(futs):
            name, rc, log, secs = f.result()
            if rc != "not built":
                times[name] = round(secs, 1)
            if rc == 0:
                passed += 1
                print(f"memcheck: {name} clean ({secs:.1f} s)", flush=True)
                continue
            failed += 1
            why = {99: "valgrind found errors or leaks",
                   "not built": "test executable not built",
                   "timeout": f"timed out after {TIMEOUT_S}s"}.get(
                       rc, f"test exited {rc}")
            print(f"memcheck: {name} FAILED: {why} (log {log})", flush=True)
            for path in (log, log + ".out"):
                with open(path, errors="replace") as fh:
                    sys.stdout.write("".join(fh.readlines()[-60:]))
    with open(times_path, "w") as fh:
        json.dump(times, fh, indent=1, sort_keys=True)
    print(f"memcheck: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
