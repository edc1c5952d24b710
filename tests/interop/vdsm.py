#!/usr/bin/env python3
"""What Vdsm's own code makes of xenify's output, for `make interop`.

The verdicts are the Vdsm oracle's (../shared/oracles/vdsm: check-vdsm,
run-hook); this script only runs it and holds xenify to what it promises
about each verdict:

- a converted fixture domain is `ok`, or fails only where xenify's report
  says it removed a device Vdsm tracked (the device and its alias named in a
  `removed` finding) or that Vdsm will balloon the VM; `UNJUDGED` only where
  Vdsm fails on the original before any hook runs;
- a hot-plug into a running converted domain is `ok`, except a hot-plugged
  virtio disk under a stock Vdsm, whose metadata Vdsm saves under the
  engine's `vdX` name before the hook renames it (only the project's Vdsm
  patch fixes that: with --vdsm-lib it must be `ok` too);
- under Vdsm's own hook runner, the converted XML reaches Vdsm, and a
  refusal reaches it as a HookError naming the custom-property value that
  lets the VM start.

With --xen-host (and --vdsm-lib), check-vdsm judges as on a Xen dom0
(`--xen-host`, Vdsm set to xen:///system): Vdsm's real connection reaches
libvirt's libxl driver, which defines every domain, the placeholder included.

Usage: vdsm.py --xenify BIN --shared DIR --work DIR [--vdsm-lib DIR [--xen-host]]
"""

import argparse
import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

ALL_LOSSES = "nwfilter,link-state,vlan,graphics-security,floppy-media,secure-boot,tpm,scsi-passthrough"
ROOT = Path(__file__).resolve().parents[2]
CHECKS = ("start", "recovery", "metadata", "balloon", "aliases", "xen-host", "hotplug", "device", "stats", "not judged")
REASON_SPLIT = re.compile(r"; (?=(?:%s)\b)" % "|".join(re.escape(c) for c in CHECKS))
DEVICE_PATH = re.compile(r"^/domain/devices/(disk|interface|lease|graphics)\[(\d+)\]$")
CLASS_OF = {"disk": "disks", "interface": "NICs", "lease": "leases", "graphics": "graphics"}

problems = []
# check-vdsm's options for a Xen dom0, with --xen-host.
XEN_HOST = []


def problem(what):
    problems.append(what)
    print("FAIL " + what)


def run(cmd, env=None, **kw):
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run(cmd, capture_output=True, text=True, env=full_env, **kw)


def verdicts(output):
    """(verdict, file, reasons) for each line check-vdsm printed."""
    for line in output.splitlines():
        m = re.match(r"^(ok|FAIL|UNJUDGED) (\S+?)(?:: (.*))?$", line)
        if m:
            yield m.group(1), m.group(2), REASON_SPLIT.split(m.group(3) or "")


def removed_devices(report, original):
    """What xenify's report says it removed from <devices>: per device class
    the count, the aliases Vdsm loses and the disk names."""
    tree = ET.parse(original).getroot()
    devices = tree.find("devices")
    counts, aliases, names = {}, set(), set()
    for f in report["findings"]:
        if f["kind"] != "removed":
            continue
        m = re.search(r"no longer track this device \(alias (ua-[^)]+)\)", f["message"])
        if m:
            aliases.add(m.group(1))
        p = DEVICE_PATH.match(f["path"])
        if not p or devices is None:
            continue
        kind, index = p.group(1), int(p.group(2))
        counts[CLASS_OF[kind]] = counts.get(CLASS_OF[kind], 0) + 1
        same = [d for d in devices if d.tag == kind]
        if kind == "disk" and index <= len(same):
            target = same[index - 1].find("target")
            if target is not None and target.get("dev"):
                names.add(target.get("dev"))
    return counts, aliases, names


def unexplained(reason, report, original):
    """None when xenify's report accounts for this failure, else why not."""
    check, _, text = reason.partition(": ")
    counts, aliases, names = removed_devices(report, original)
    if check == "aliases":
        lost = set(re.findall(r"\bua-[0-9A-Za-z_-]+", text))
        missing = lost - aliases
        return f"aliases lost without a report of the removal: {sorted(missing)}" if missing else None
    if check == "balloon":
        said = any(f["kind"] == "warning" and "Vdsm will balloon" in f["message"] for f in report["findings"])
        return None if said else "Vdsm balloons the VM and the report does not warn"
    if check == "recovery":
        changes = re.findall(r"(disks|NICs|leases|graphics) (\d+) -> (\d+)", text)
        if not changes:
            return "a recovery failure no removal explains"
        for cls, before, after in changes:
            if int(before) - int(after) != counts.get(cls, 0):
                return f"{cls} {before} -> {after}, but the report removes {counts.get(cls, 0)}"
        return None
    if check == "metadata":
        m = re.search(r"devtype=disk name=(\w+)> matches no device", text)
        if m and m.group(1) in names:
            return None
        return "a metadata failure no removed disk explains"
    return "not a failure xenify may leave"


def judge_domains(output, reports, label):
    seen = 0
    for verdict, path, reasons in verdicts(output):
        seen += 1
        name = Path(path).name
        if verdict == "ok":
            continue
        if verdict == "UNJUDGED":
            if not reasons[0].startswith("Vdsm fails on ORIGINAL before"):
                problem(f"{label} {name}: unjudged: {reasons[0][:300]}")
            continue
        report, original = reports[name]
        for r in reasons:
            why = unexplained(r, report, original)
            if why:
                problem(f"{label} {name}: {why}: {r[:300]}")
    if seen == 0:
        problem(f"{label}: check-vdsm printed no verdict")
    print(f"{label}: {seen} domains judged")


def convert_fixtures(xenify, out):
    """Every fixture domain converted with every loss accepted, with its
    JSON report: the input of --pairs and what justifies each failure."""
    out.mkdir(parents=True, exist_ok=True)
    reports = {}
    for f in sorted((ROOT / "fixtures/domains").glob("*.xml")):
        report = out / (f.stem + ".json")
        r = run([xenify, "convert", str(f), "--accept", ALL_LOSSES, "-o", str(out / f.name),
                 "--report", "json", "--report-file", str(report)])
        if r.returncode != 0:
            problem(f"xenify did not convert {f.name}: {r.stderr[:300]}")
            continue
        reports[f.name] = (json.loads(report.read_text()), f)
    return reports


def hotplug(oracle, xenify, vdsm_env, patched):
    domains = ["hostedengine-lease.xml", "vm-hibernated.xml"]
    for doc in sorted((ROOT / "fixtures/hotplug").glob("*.xml")):
        device = ET.parse(doc).getroot().find("devices")[0]
        point = "before_nic_hotplug" if device.tag == "interface" else "before_disk_hotplug"
        target = device.find("target")
        virtio = device.tag == "disk" and target is not None and target.get("dev", "").startswith("vd")
        for d in domains:
            r = run([oracle / "check-vdsm", *XEN_HOST, "--point", point, str(ROOT / "fixtures/domains" / d), str(doc), xenify,
                     "xenify_accept=" + ALL_LOSSES], env=vdsm_env)
            lines = list(verdicts(r.stdout))
            if not lines:
                problem(f"hot-plug {doc.name} into {d}: no verdict: {r.stderr[-300:]}")
                continue
            verdict, _, reasons = lines[0]
            checks = {x.partition(": ")[0] for x in reasons}
            if verdict == "ok":
                print(f"ok hot-plug {doc.name} into {d}")
            elif virtio and not patched and verdict == "FAIL" and checks <= {"metadata", "recovery"}:
                print(f"known hot-plug {doc.name} into {d} (stock Vdsm keeps the engine's vdX name): {'; '.join(reasons)[:200]}")
            else:
                problem(f"hot-plug {doc.name} into {d}: {verdict}: {'; '.join(reasons)[:400]}")


def hook_runner(oracle, xenify, vdsm_env):
    """Vdsm's own hook runner: the converted XML comes back; a refusal is a
    HookError naming a value of xenify_accept that lets the VM start."""
    domain = ROOT / "fixtures/domains/hostedengine-lease.xml"
    refused = run([oracle / "run-hook", xenify, str(domain)], env=vdsm_env)
    if refused.returncode != 1 or "Hook Error" not in refused.stdout + refused.stderr:
        problem(f"run-hook: a refused VM did not reach Vdsm as a HookError (exit {refused.returncode})")
        return
    values = sorted(set(re.findall(r"xenify_accept=([a-z,-]+)", refused.stdout + refused.stderr)))
    for value in values:
        started = run([oracle / "run-hook", xenify, str(domain), "xenify_accept=" + value], env=vdsm_env)
        if started.returncode == 0:
            expected = run([xenify, "convert", str(domain), "--accept", value])
            if started.stdout != expected.stdout:
                problem("run-hook: what Vdsm got back is not what xenify converts")
            else:
                print(f"ok run-hook: HookError names xenify_accept={value}, which starts the VM; Vdsm gets the converted XML")
            return
    problem(f"run-hook: no value the HookError names lets the VM start (named: {values})")


def main():
    a = argparse.ArgumentParser()
    a.add_argument("--xenify", required=True)
    a.add_argument("--shared", required=True)
    a.add_argument("--work", required=True)
    a.add_argument("--vdsm-lib", help="a patched copy of the oracle's vdsm-lib")
    a.add_argument("--xen-host", action="store_true", help="judge as on a Xen dom0 (needs --vdsm-lib)")
    args = a.parse_args()
    oracle = Path(args.shared).resolve() / "oracles/vdsm"
    xenify = str(Path(args.xenify).resolve())
    work = Path(args.work)
    vdsm_env, label = {}, "stock Vdsm"
    if args.vdsm_lib:
        vdsm_env["VDSM_ORACLE_LIB"] = str(Path(args.vdsm_lib).resolve())
        label = "patched Vdsm"
    if args.xen_host:
        XEN_HOST[:] = ["--xen-host", "--vdsm-config", "vars:libvirt_uri=xen:///system"]
        label += " on a Xen dom0"
    reports = convert_fixtures(xenify, work / "out")
    pairs = run([oracle / "check-vdsm", *XEN_HOST, "--pairs", str(ROOT / "fixtures/domains"), str(work / "out")], env=vdsm_env)
    print(pairs.stdout, end="")
    judge_domains(pairs.stdout, reports, f"{label}, pairs")
    domains = sorted(str(p) for p in (ROOT / "fixtures/domains").glob("*.xml"))
    hooked = run([oracle / "check-vdsm", *XEN_HOST, "--hook", xenify, *domains, "xenify_accept=" + ALL_LOSSES], env=vdsm_env)
    print(hooked.stdout, end="")
    judge_domains(hooked.stdout, reports, f"{label}, as its hook")
    hotplug(oracle, xenify, vdsm_env, bool(args.vdsm_lib))
    hook_runner(oracle, xenify, vdsm_env)
    if problems:
        print(f"interop (Vdsm): {len(problems)} problems", file=sys.stderr)
        sys.exit(1)
    print(f"interop (Vdsm, {label}): ok")


if __name__ == "__main__":
    main()
