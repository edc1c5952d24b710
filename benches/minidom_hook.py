#!/usr/bin/env python3
"""The comparison point of `make bench`: a Vdsm hook written the usual way,
in Python with xml.dom.minidom (as Vdsm's hooking.read_domxml/write_domxml
do), making the main rewrites xenify makes. It is not xenify's equal (no
report, no refusals, layout not kept); it shows what a quick hook costs.
"""

import os
import xml.dom.minidom


def children(node, name):
    return [c for c in node.childNodes if c.nodeType == c.ELEMENT_NODE and c.tagName == name]


def first(node, name):
    found = children(node, name)
    return found[0] if found else None


def remove(node):
    node.parentNode.removeChild(node)


def convert(doc):
    domain = doc.documentElement
    domain.setAttribute("type", "xen")
    devices = first(domain, "devices")
    os_el = first(domain, "os")
    if os_el is not None:
        t = first(os_el, "type")
        if t is not None:
            t.setAttribute("machine", "xenfv")
        for name in ("smbios", "bootmenu", "bios", "nvram"):
            for e in children(os_el, name):
                remove(e)
    features = first(domain, "features")
    if features is None:
        features = doc.createElement("features")
        domain.appendChild(features)
    for name in ("apic", "pae"):
        if first(features, name) is None:
            features.appendChild(doc.createElement(name))
    for name in ("kvm", "vmport", "smm", "vmcoreinfo", "pvspinlock", "ioapic", "pmu"):
        for e in children(features, name):
            remove(e)
    clock = first(domain, "clock")
    if clock is not None:
        for t in children(clock, "timer"):
            if t.getAttribute("name") in ("rtc", "pit", "kvmclock", "hypervclock", "platform", "hpet"):
                remove(t)
    for name in ("cpu", "maxMemory", "memoryBacking", "memtune", "numatune", "iothreads", "resource"):
        for e in children(domain, name):
            remove(e)
    if devices is None:
        return
    index = 0
    for dev in [c for c in devices.childNodes if c.nodeType == c.ELEMENT_NODE]:
        tag = dev.tagName
        if tag == "emulator":
            remove(dev)
        elif tag == "disk":
            target = first(dev, "target")
            if dev.getAttribute("device") == "cdrom":
                if target is not None:
                    target.setAttribute("dev", "hdc")
                    target.setAttribute("bus", "ide")
                source = first(dev, "source")
                if source is not None and not source.getAttribute("file"):
                    remove(source)
            elif dev.getAttribute("device") == "floppy":
                remove(dev)
            elif target is not None:
                if index == 2:
                    index += 1
                target.setAttribute("dev", "xvd" + chr(ord("a") + index))
                target.setAttribute("bus", "xen")
                index += 1
            driver = first(dev, "driver")
            if driver is not None:
                for attr in ("cache", "io", "error_policy", "iothread"):
                    if driver.hasAttribute(attr):
                        driver.removeAttribute(attr)
            for name in ("address", "serial", "boot"):
                for e in children(dev, name):
                    remove(e)
        elif tag == "interface":
            model = first(dev, "model")
            if model is not None and model.getAttribute("type") == "virtio":
                model.setAttribute("type", "e1000")
            for name in ("filterref", "address", "target", "driver", "boot"):
                for e in children(dev, name):
                    remove(e)
        elif tag == "channel":
            target = first(dev, "target")
            if dev.getAttribute("type") == "spicevmc" or target is None:
                remove(dev)
            else:
                target.setAttribute("type", "xen")
        elif tag == "controller":
            if dev.getAttribute("type") != "xenbus":
                remove(dev)
        elif tag == "memballoon":
            dev.setAttribute("model", "xen")
            for e in children(dev, "stats") + children(dev, "address"):
                remove(e)
        elif tag == "graphics":
            for attr in ("tlsPort", "passwdValidTo"):
                if dev.hasAttribute(attr):
                    dev.removeAttribute(attr)
            for listen in children(dev, "listen"):
                if listen.getAttribute("type") == "network":
                    listen.setAttribute("type", "address")
                    listen.setAttribute("address", "0.0.0.0")
                    listen.removeAttribute("network")
            for e in children(dev, "channel"):
                remove(e)
        elif tag == "video":
            model = first(dev, "model")
            if model is not None and model.getAttribute("type") == "qxl":
                model.setAttribute("vram", "131072")
        elif tag in ("rng", "watchdog", "smartcard", "redirdev", "panic"):
            remove(dev)
    os_boot = os_el is not None and first(os_el, "boot") is not None
    if os_el is not None and not os_boot:
        boot = doc.createElement("boot")
        boot.setAttribute("dev", "hd")
        os_el.appendChild(boot)


def main():
    path = os.environ["_hook_domxml"]
    doc = xml.dom.minidom.parse(path)
    convert(doc)
    with open(path, "wb") as f:
        f.write(doc.toxml(encoding="utf-8"))


if __name__ == "__main__":
    main()
