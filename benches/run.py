#!/usr/bin/env python3
"""`make bench`: one table of xenify's costs, every figure a median of runs
made in this one invocation, so that ratios hold on a noisy, shared machine.

1. In-process, per domain of fixtures/domains: a bare roxmltree parse
   against the whole pipeline (criterion's medians, from target/criterion).
2. Whole process: xenify in hook mode on a real domain (the file restored
   from a pristine copy before every run) against `cp` of the same file and
   against a minidom Python hook doing the main rewrites; runs interleaved;
   peak resident memory of the hook from wait4(2).
3. Batch: `xenify check` over a directory of 1,000 domains.
4. Worst shapes: the inputs of tests/growth.rs (the shapes that once made
   xenify's cost grow faster than its input) at 1 and 8 MiB, converted by
   the release binary: the cost per MB, and its growth from 1 to 8 MiB (1.0
   for a linear cost, 8 for a quadratic one).
"""

import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
XENIFY = ROOT / "target" / "release" / "xenify"
DOMAINS = sorted((ROOT / "fixtures" / "domains").glob("*.xml"))
HOOK_DOMAIN = ROOT / "fixtures" / "domains" / "vm-hibernated.xml"
ACCEPT = "nwfilter,link-state,vlan,graphics-security,floppy-media,secure-boot,tpm,scsi-passthrough"
RUNS = int(os.environ.get("BENCH_RUNS", "300"))
SLOW_RUNS = int(os.environ.get("BENCH_SLOW_RUNS", "40"))


QUIET = [(os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0), (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0)]


def run_timed(argv, env=None):
    """Wall time (s) of one process, spawned the same way for every command, output discarded."""
    start = time.perf_counter()
    pid = os.posix_spawn(argv[0], argv, env if env is not None else os.environ, file_actions=QUIET)
    _, status = os.waitpid(pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"bench: {' '.join(argv)} failed")
    return elapsed


def peak_rss(argv, env, restore, runs=20):
    """The largest peak resident set (KiB) over `runs` runs, as GNU time reports it
    (a child of a small process: the Python interpreter's pages do not count)."""
    gnu_time = shutil.which("time", path="/usr/bin:/bin") or sys.exit("bench: /usr/bin/time is missing")
    peak = 0
    for _ in range(runs):
        restore()
        r = subprocess.run([gnu_time, "-f", "%M", *argv], env=env, capture_output=True, text=True, check=True)
        peak = max(peak, int(r.stderr.strip().splitlines()[-1]))
    return peak


def in_process():
    rows = []
    for d in DOMAINS:
        base = ROOT / "target" / "criterion" / d.stem
        try:
            parse = json.loads((base / "parse" / "new" / "estimates.json").read_text())["median"]["point_estimate"]
            pipe = json.loads((base / "pipeline" / "new" / "estimates.json").read_text())["median"]["point_estimate"]
        except FileNotFoundError:
            sys.exit(f"bench: no criterion results for {d.stem}; run `cargo bench --bench pipeline` first")
        size = d.stat().st_size
        rows.append((d.name, size, parse / 1e3, pipe / 1e3, pipe / parse, size / (pipe / 1e9) / 1e6))
    return rows


def whole_process(tmp):
    pristine = HOOK_DOMAIN.read_bytes()
    target = tmp / "domxml"
    copy_dst = tmp / "copy"
    env = dict(os.environ, _hook_domxml=str(target), XENIFY_CONFIG="/dev/null", xenify_accept=ACCEPT)
    py_env = dict(os.environ, _hook_domxml=str(target))
    cp = shutil.which("cp")
    python = sys.executable
    minidom = str(ROOT / "benches" / "minidom_hook.py")
    times = {"xenify": [], "cp": [], "minidom": []}
    for i in range(RUNS):
        target.write_bytes(pristine)
        times["xenify"].append(run_timed([str(XENIFY)], env))
        times["cp"].append(run_timed([cp, str(target), str(copy_dst)]))
        if i < SLOW_RUNS:
            target.write_bytes(pristine)
            times["minidom"].append(run_timed([python, minidom], py_env))
    med = {k: statistics.median(v) for k, v in times.items()}
    restore = lambda: target.write_bytes(pristine)  # noqa: E731
    peak = {"xenify": peak_rss([str(XENIFY)], env, restore), "minidom": peak_rss([python, minidom], py_env, restore, 5)}
    return med, peak, len(pristine)


def batch(tmp):
    d = tmp / "fleet"
    d.mkdir()
    total = 0
    for i in range(1000):
        src = DOMAINS[i % len(DOMAINS)]
        dst = d / f"vm{i:04d}-{src.name}"
        shutil.copyfile(src, dst)
        total += dst.stat().st_size
    times = []
    for _ in range(7):
        start = time.perf_counter()
        subprocess.run([str(XENIFY), "check", str(d), "--accept", ACCEPT], stdout=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - start)
    t = statistics.median(times)
    return total, t


SHAPES_SIZE = 8 << 20
SHAPE_RUNS = int(os.environ.get("BENCH_SHAPE_RUNS", "3"))


def worst_shapes(tmp):
    """(shape, small bytes, small s, large bytes, large s, exit code) per shape of tests/growth.rs."""
    d = tmp / "shapes"
    env = dict(os.environ, XENIFY_SHAPES_DIR=str(d), XENIFY_SHAPES_SIZE=str(SHAPES_SIZE))
    subprocess.run(["cargo", "test", "-q", "--locked", "--test", "growth", "write_worst_shapes", "--", "--ignored"],
                   cwd=ROOT, env=env, stdout=subprocess.DEVNULL, check=True)
    rows = []
    for small in sorted(d.glob("*.small.xml")):
        large = small.with_name(small.name.replace(".small.", ".large."))
        name = small.name.split(".")[0][3:].replace("-", " ")
        costs, code = [], 0
        for f in (small, large):
            times = []
            for _ in range(SHAPE_RUNS):
                start = time.perf_counter()
                r = subprocess.run([str(XENIFY), "convert", str(f), "--accept", ACCEPT, "-o", str(tmp / "shape-out.xml")],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                times.append(time.perf_counter() - start)
                code = r.returncode
            costs.append(statistics.median(times))
        rows.append((name, small.stat().st_size, costs[0], large.stat().st_size, costs[1], code))
    return rows


def machine():
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{platform.machine()}, {os.cpu_count()} CPUs ({cpu}), Linux {platform.release()}, Python {platform.python_version()}"


def main():
    if not XENIFY.exists():
        sys.exit("bench: build the release binary first (make build)")
    out = []
    out.append(f"xenify {subprocess.run([str(XENIFY), '--version'], capture_output=True, text=True).stdout.strip()}, "
               f"{time.strftime('%Y-%m-%d')}, {machine()}")
    out.append("")
    out.append("In process (criterion medians): bare roxmltree parse against the whole pipeline, write included")
    out.append("")
    out.append("| domain | bytes | parse (µs) | pipeline (µs) | pipeline / parse | pipeline MB/s |")
    out.append("| --- | ---: | ---: | ---: | ---: | ---: |")
    rows = in_process()
    for name, size, p, q, r, mbs in rows:
        out.append(f"| {name} | {size} | {p:.1f} | {q:.1f} | {r:.2f} | {mbs:.0f} |")
    ratios = [r[4] for r in rows]
    out.append(f"| **median** | | | | **{statistics.median(ratios):.2f}** (max {max(ratios):.2f}) | |")
    out.append("")
    with tempfile.TemporaryDirectory(prefix="xenify-bench-") as t:
        tmp = Path(t)
        med, peak, size = whole_process(tmp)
        out.append(f"Whole process, hook mode on {HOOK_DOMAIN.name} ({size} bytes): medians of {RUNS} interleaved runs "
                   f"({SLOW_RUNS} for minidom), each spawned the same way")
        out.append("")
        out.append("| command | median wall (ms) | × cp | peak RSS (KiB) |")
        out.append("| --- | ---: | ---: | ---: |")
        out.append(f"| cp (the floor) | {med['cp'] * 1e3:.2f} | 1.00 | |")
        out.append(f"| xenify (hook) | {med['xenify'] * 1e3:.2f} | {med['xenify'] / med['cp']:.2f} | {peak['xenify']} |")
        out.append(f"| minidom Python hook | {med['minidom'] * 1e3:.2f} | {med['minidom'] / med['cp']:.2f} | {peak['minidom']} |")
        out.append("")
        total, secs = batch(tmp)
        out.append(f"Batch: `xenify check` over 1,000 domains ({total / 1e6:.1f} MB), median of 7 runs")
        out.append("")
        out.append("| wall (s) | MB/s | files/s |")
        out.append("| ---: | ---: | ---: |")
        out.append(f"| {secs:.3f} | {total / secs / 1e6:.0f} | {1000 / secs:.0f} |")
        out.append("")
        out.append(f"Worst shapes (tests/growth.rs) at {SHAPES_SIZE // 8 >> 20} and {SHAPES_SIZE >> 20} MiB, `xenify convert -o`, "
                   f"medians of {SHAPE_RUNS} runs; growth = (large time / small time) / (large size / small size)")
        out.append("")
        out.append("| shape | outcome | large (ms) | ms per MB | growth |")
        out.append("| --- | --- | ---: | ---: | ---: |")
        for name, ssize, st, lsize, lt, code in worst_shapes(tmp):
            growth = (lt / st) / (lsize / ssize)
            outcome = {0: "converted", 1: "refused"}.get(code, "error: past a limit")
            out.append(f"| {name} | {outcome} | {lt * 1e3:.0f} | {lt * 1e3 / (lsize / 1e6):.1f} | {growth:.2f} |")
    text = "\n".join(out) + "\n"
    sys.stdout.write(text)
    (ROOT / "target" / "bench.md").write_text(text)


if __name__ == "__main__":
    main()
