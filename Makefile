# xenify: the commands the README names. `make test` is what CI runs first,
# `make interop` second (.ci/run).

CARGO   ?= cargo
# The read-only references and oracles beside the project.
SHARED  ?= $(firstword $(wildcard ../shared /work/shared))
ORACLE  := $(SHARED)/oracles/check-domain
ALL_LOSSES := nwfilter,link-state,vlan,graphics-security,floppy-media,secure-boot,tpm,scsi-passthrough
INTEROP := target/interop
DEMO    := fixtures/domains/hostedengine-lease.xml

.PHONY: all build test interop demo clean fuzz bench install uninstall rpm rpm-check have-rpmbuild \
	vdsm-patched interop-host interop-xen-host cpu-data

all: build

build:
	$(CARGO) build --release --locked
	@echo "xenify: the binary is $(XENIFY_BIN)"

# The binary `build` makes, which `install` installs: cargo puts it under
# CARGO_TARGET_DIR when that is set (the RPM build does, see `rpm`).
XENIFY_BIN ?= $(or $(CARGO_TARGET_DIR),target)/release/xenify

# Unit, snapshot, CLI and hook tests. With CI=true insta never writes snapshots.
test:
	$(CARGO) test --locked

# Windows guests, which cannot run as PVH: left out of the PVH variant.
PVH_EXCLUDE := vm-sysprep-floppy.xml uefi-secure-boot.xml
PVH_DOMAINS := $(filter-out $(addprefix fixtures/domains/,$(PVH_EXCLUDE)),$(wildcard fixtures/domains/*.xml))

# Every fixture domain, converted with every loss id accepted, must pass
# libvirt's libxl driver and Xen's xl (the oracles in $(SHARED)/oracles):
# as HVM (the default), and as PVH where the guest can be PVH.
interop: build
	@test -x "$(ORACLE)" || { echo "interop: no oracle at $(ORACLE) (set SHARED=...)" >&2; exit 2; }
	@rm -rf $(INTEROP) && mkdir -p $(INTEROP)/hvm $(INTEROP)/pvh
	@for f in fixtures/domains/*.xml; do \
	    out=$(INTEROP)/hvm/$$(basename "$$f"); \
	    $(XENIFY_BIN) convert "$$f" --accept $(ALL_LOSSES) -o "$$out" 2>"$$out.report" \
	    || { echo "interop: xenify did not convert $$f:" >&2; cat "$$out.report" >&2; exit 1; }; \
	done
	@for f in $(PVH_DOMAINS); do \
	    out=$(INTEROP)/pvh/$$(basename "$$f"); \
	    $(XENIFY_BIN) convert "$$f" --config fixtures/interop-pvh.toml -o "$$out" 2>"$$out.report" \
	    || { echo "interop: xenify did not convert $$f as PVH:" >&2; cat "$$out.report" >&2; exit 1; }; \
	done
	$(ORACLE) $(INTEROP)/hvm/*.xml
	$(ORACLE) $(INTEROP)/pvh/*.xml
	@# 300 domains from the property tests' generator: every one that
	@# converts must pass too (a refusal, such as a third CD-ROM, is fine).
	@mkdir -p $(INTEROP)/generated-in $(INTEROP)/generated
	@XENIFY_GENERATE_DIR=$(CURDIR)/$(INTEROP)/generated-in $(CARGO) test -q --locked --test properties write_generated_domains -- --ignored >/dev/null
	@for f in $(INTEROP)/generated-in/*.xml; do \
	    $(XENIFY_BIN) convert "$$f" --accept $(ALL_LOSSES) -o $(INTEROP)/generated/$$(basename "$$f") 2>/dev/null || true; \
	done
	@$(ORACLE) $(INTEROP)/generated/*.xml >$(INTEROP)/generated.log || { grep -v '^ok' $(INTEROP)/generated.log; exit 1; }
	@echo "ok: $$(grep -c '^ok' $(INTEROP)/generated.log) generated domains"
	@# Vdsm's own code on the same output (the oracle in $(SHARED)/oracles/vdsm):
	@# the converted fixtures as pairs and as Vdsm's hook, hot-plugs into them,
	@# and Vdsm's hook runner; first with Vdsm as it is, then with
	@# packaging/vdsm/*.patch applied. tests/interop/vdsm.py says which
	@# verdicts xenify's report must account for.
	python3 tests/interop/vdsm.py --xenify $(XENIFY_BIN) --shared $(SHARED) --work $(INTEROP)/vdsm
	@$(MAKE) --no-print-directory vdsm-patched
	python3 tests/interop/vdsm.py --xenify $(XENIFY_BIN) --shared $(SHARED) --work $(INTEROP)/vdsm-patched --vdsm-lib $(INTEROP)/vdsm-lib
	@$(MAKE) --no-print-directory interop-host
	@$(MAKE) --no-print-directory interop-xen-host

# The Vdsm oracle (check-vdsm, check-caps: Vdsm's own code, and oVirt
# Engine's admission rules), the project's Vdsm patches, and the fake Xen
# dom0s of fixtures/hosts (the oracle's layout, each beside a cluster.json
# of its CPU family).
VDSM_ORACLE  := $(SHARED)/oracles/vdsm
VDSM_PATCHES := $(sort $(wildcard packaging/vdsm/*.patch))
PATCHED_VDSM := $(INTEROP)/vdsm-lib
XEN_URI      := --vdsm-config vars:libvirt_uri=xen:///system
FAKE_HOSTS   := $(sort $(patsubst %/xl-info,%,$(wildcard fixtures/hosts/*/xl-info)))
# The oracle's hand-fixed pair (Vdsm can start and recover it on libxl),
# which isolates the Vdsm patch from the conversion.
VDSM_EXAMPLE := --pairs $(VDSM_ORACLE)/examples/in $(VDSM_ORACLE)/examples/out

# A copy of the oracle's Vdsm (oVirt/vdsm's lib/) with the patches applied in
# order, each one without fuzz or offset; taken out again in reverse order,
# they give Vdsm back as it was.
vdsm-patched:
	@test -d "$(VDSM_ORACLE)/vdsm-lib" || { echo "interop: no Vdsm oracle at $(VDSM_ORACLE)" >&2; exit 2; }
	@rm -rf $(PATCHED_VDSM) && mkdir -p $(INTEROP) && cp -r $(VDSM_ORACLE)/vdsm-lib $(PATCHED_VDSM) && chmod -R u+w $(PATCHED_VDSM)
	@for p in $(VDSM_PATCHES); do \
	    out=$$(patch -p2 --fuzz=0 --no-backup-if-mismatch -d $(PATCHED_VDSM) <"$$p" 2>&1) \
	    || { echo "$$out" >&2; echo "interop: $$p does not apply to Vdsm's lib/" >&2; exit 1; }; \
	    if echo "$$out" | grep -Eqi 'offset|fuzz'; then echo "$$out" >&2; echo "interop: $$p applies only with an offset or fuzz" >&2; exit 1; fi; \
	    echo "ok: $$p applies to Vdsm's lib/"; \
	done
	@rm -rf $(INTEROP)/vdsm-unpatched && cp -r $(PATCHED_VDSM) $(INTEROP)/vdsm-unpatched
	@for p in $$(printf '%s\n' $(VDSM_PATCHES) | sort -r); do \
	    patch -R -p2 --fuzz=0 --no-backup-if-mismatch -s -d $(INTEROP)/vdsm-unpatched <"$$p" || exit 1; \
	done
	@diff -r $(VDSM_ORACLE)/vdsm-lib $(INTEROP)/vdsm-unpatched >/dev/null \
	    || { echo "interop: patch -R -p2 in reverse order does not give Vdsm's lib/ back" >&2; exit 1; }
	@rm -rf $(INTEROP)/vdsm-unpatched && echo "ok: patch -R -p2, in reverse order, gives Vdsm's lib/ back"

# What the host needs, with the patched Vdsm: Vdsm reaches libxl (check-vdsm
# --xen-host on the oracle's example pair; the stock Vdsm and the patched one
# without the setting must fail naming the URI), the Engine admits every fake
# dom0 with xenify as after_get_caps hook (check-caps) and a hook that changes
# nothing is refused (the check is live), xenify's after_get_stats reports
# Xen's free memory (tools/check-stats; /bin/true must fail), and the CPU
# data is what libvirt's cpu_map and Xen's featureset give.
interop-host: build vdsm-patched
	VDSM_ORACLE_LIB=$(abspath $(PATCHED_VDSM)) $(VDSM_ORACLE)/check-vdsm --xen-host $(XEN_URI) $(VDSM_EXAMPLE)
	@for lib in "" $(abspath $(PATCHED_VDSM)); do \
	    out=$$(VDSM_ORACLE_LIB=$$lib $(VDSM_ORACLE)/check-vdsm --xen-host $(VDSM_EXAMPLE)); \
	    echo "$$out" | grep -q '^FAIL .*xen-host: Vdsm opened qemu:///system' \
	    || { echo "$$out" >&2; echo "interop: Vdsm $${lib:-as shipped} without libvirt_uri does not fail naming the URI" >&2; exit 1; }; \
	    echo "ok: Vdsm $${lib:+patched }$${lib:-as shipped} without libvirt_uri fails naming qemu:///system"; \
	done
	VDSM_ORACLE_LIB=$(abspath $(PATCHED_VDSM)) $(VDSM_ORACLE)/check-caps $(XEN_URI) $(XENIFY_BIN)
	@for h in $(FAKE_HOSTS); do \
	    echo "$(VDSM_ORACLE)/check-caps $(XEN_URI) --host $$h --cluster $$h/cluster.json $(XENIFY_BIN)"; \
	    VDSM_ORACLE_LIB=$(abspath $(PATCHED_VDSM)) $(VDSM_ORACLE)/check-caps $(XEN_URI) --host $$h --cluster $$h/cluster.json $(XENIFY_BIN) || exit 1; \
	done
	@for h in "" $(FAKE_HOSTS); do \
	    out=$$(VDSM_ORACLE_LIB=$(abspath $(PATCHED_VDSM)) $(VDSM_ORACLE)/check-caps $(XEN_URI) $${h:+--host $$h --cluster $$h/cluster.json} /bin/true); \
	    case $$out in "FAIL /bin/true: "*) echo "ok: /bin/true is refused on $${h:-the oracle's host}";; \
	    *) echo "$$out" >&2; echo "interop: check-caps does not refuse a hook that changes nothing" >&2; exit 1;; esac; \
	done
	@for h in "" $(FAKE_HOSTS); do \
	    PYTHONPYCACHEPREFIX=$${XEN_ORACLES_HOME:-/tmp/xen-oracles}/pycache VDSM_ORACLE_LIB=$(abspath $(PATCHED_VDSM)) \
	        tools/check-stats --oracle $(VDSM_ORACLE) $${h:+--host $$h} $(XEN_URI) $(XENIFY_BIN) || exit 1; \
	    out=$$(PYTHONPYCACHEPREFIX=$${XEN_ORACLES_HOME:-/tmp/xen-oracles}/pycache VDSM_ORACLE_LIB=$(abspath $(PATCHED_VDSM)) \
	        tools/check-stats --oracle $(VDSM_ORACLE) $${h:+--host $$h} $(XEN_URI) /bin/true); \
	    case $$out in "FAIL /bin/true: memFree: "*) ;; *) echo "$$out" >&2; echo "interop: check-stats does not refuse a hook that changes nothing" >&2; exit 1;; esac; \
	done
	@echo "ok: /bin/true fails check-stats on every host"
	@tools/cpu-data | tail -n +3 >$(INTEROP)/cpu_data.rs && tail -n +3 src/caps/cpu_data.rs | diff -u - $(INTEROP)/cpu_data.rs \
	    || { echo "interop: src/caps/cpu_data.rs differs from what tools/cpu-data makes of this machine's cpu_map and cpufeatureset.h (make cpu-data)" >&2; exit 1; }
	@echo "ok: src/caps/cpu_data.rs is what libvirt's cpu_map and Xen's cpufeatureset.h give"

# The patched Vdsm on a Xen dom0 (check-vdsm --xen-host, Vdsm set to
# xen:///system): tests/interop/vdsm.py's run of the converted fixtures as
# pairs, as Vdsm's hook and with hot-plugs, each verdict held against
# xenify's report as for `interop`; a `xen-host` failure (Vdsm does not
# reach libxl, or libxl rejects the placeholder) is never accounted for.
interop-xen-host: build vdsm-patched
	python3 tests/interop/vdsm.py --xenify $(XENIFY_BIN) --shared $(SHARED) --work $(INTEROP)/vdsm-xen-host \
	    --vdsm-lib $(INTEROP)/vdsm-lib --xen-host

# Regenerates the CPU models and features of the after_get_caps hook from
# this machine's libvirt cpu_map and Xen cpufeatureset.h (libvirt0 and
# libxen-dev on Debian).
cpu-data:
	tools/cpu-data >src/caps/cpu_data.rs.new && mv src/caps/cpu_data.rs.new src/caps/cpu_data.rs

# One table of costs, all medians from this run: in-process parse against
# pipeline (criterion), the hook against `cp` and a minidom Python hook, and
# `xenify check` over 1,000 domains. See docs/performance.md.
bench: build
	$(CARGO) bench --locked --bench pipeline -- --noplot >/dev/null
	python3 benches/run.py

# Convert a bundled oVirt domain and show what changed.
demo: build
	$(XENIFY_BIN) convert $(DEMO) --accept nwfilter,graphics-security --diff

clean:
	$(CARGO) clean

# Fuzz the whole pipeline with arbitrary bytes (cargo-fuzz, libFuzzer) for
# FUZZ_SECONDS; crashes land in fuzz/artifacts/pipeline/.
FUZZ_SECONDS ?= 60
fuzz:
	bash fuzz/run $(FUZZ_SECONDS)

# Where `make install` puts things. PREFIX and DESTDIR work as usual; the
# configuration and the hook links are not under PREFIX, because xenify reads
# /etc/xenify and Vdsm runs hooks only from its own directory.
PREFIX         ?= /usr
BINDIR         ?= $(PREFIX)/bin
MANDIR         ?= $(PREFIX)/share/man
BASHCOMPDIR    ?= $(PREFIX)/share/bash-completion/completions
ZSHCOMPDIR     ?= $(PREFIX)/share/zsh/site-functions
FISHCOMPDIR    ?= $(PREFIX)/share/fish/vendor_completions.d
SYSCONFDIR     ?= /etc
DOCDIR         ?= $(PREFIX)/share/doc/xenify
VDSM_HOOKS_DIR ?= /usr/libexec/vdsm/hooks
# What install created, so that uninstall removes that and nothing else.
MANIFEST       ?= $(PREFIX)/share/xenify/installed
# The Vdsm hook points that get a link to xenify: those whose output Vdsm
# uses (hooks/README.md says why each, and why not the others). The same
# list as `xenify generate hook-points` and packaging/xenify.spec
# (tests/install.rs compares them).
HOOK_POINTS := before_vm_start before_device_create before_nic_hotplug \
               before_disk_hotplug before_update_device before_memory_hotplug \
               after_get_caps after_get_stats

INSTALL_ENV = DESTDIR='$(DESTDIR)' PREFIX='$(PREFIX)' BINDIR='$(BINDIR)' MANDIR='$(MANDIR)' \
	BASHCOMPDIR='$(BASHCOMPDIR)' ZSHCOMPDIR='$(ZSHCOMPDIR)' FISHCOMPDIR='$(FISHCOMPDIR)' \
	SYSCONFDIR='$(SYSCONFDIR)' DOCDIR='$(DOCDIR)' VDSM_HOOKS_DIR='$(VDSM_HOOKS_DIR)' MANIFEST='$(MANIFEST)' \
	HOOK_POINTS='$(HOOK_POINTS)' XENIFY_BIN='$(XENIFY_BIN)'

# The binary, a link 50_xenify to it in each hook point's directory, the
# default policy unless /etc/xenify/xenify.toml exists, the sudoers rule of
# the after_get_caps hook, the Vdsm patches (under DOCDIR/vdsm), man pages
# and completions. packaging/install.sh does the work and keeps the manifest.
install: build
	@$(INSTALL_ENV) sh packaging/install.sh install

# Removes what install recorded; a policy edited since install stays.
uninstall:
	@$(INSTALL_ENV) sh packaging/install.sh uninstall

VERSION := $(shell sed -n 's/^version = "\(.*\)"$$/\1/p' Cargo.toml | head -n 1)
RPM_NAME := vdsm-hook-xenify
RPM_TOP  := $(CURDIR)/target/rpm

have-rpmbuild:
	@command -v rpmbuild >/dev/null || { echo "rpm: rpmbuild not found: install it (apt-get install rpm, or dnf install rpm-build)" >&2; exit 2; }

# A binary RPM from the working tree: a source tarball of the files git
# tracks (and new files it does not ignore, so uncommitted work is built as
# it is), then rpmbuild. --nodeps because on a Debian host rpm's database
# holds no packages, so it would find none of the build requirements (cargo,
# make) even though they are installed. cargo_target_dir points the spec's
# build at this tree's target directory, where `build` has just made the
# binary, so rpmbuild does not spend minutes on a second LTO build.
rpm: have-rpmbuild build
	@rm -rf $(RPM_TOP) && mkdir -p $(RPM_TOP)/SOURCES
	@git ls-files -z --cached --others --exclude-standard \
	| tar --null --files-from=- --ignore-failed-read --owner=0 --group=0 --numeric-owner \
	    --transform 's,^,$(RPM_NAME)-$(VERSION)/,S' -czf $(RPM_TOP)/SOURCES/$(RPM_NAME)-$(VERSION).tar.gz
	rpmbuild -bb --nodeps --quiet --define "_topdir $(RPM_TOP)" \
	    --define "cargo_target_dir $(abspath $(or $(CARGO_TARGET_DIR),target))" packaging/xenify.spec
	@rpm=$$(ls $(RPM_TOP)/RPMS/*/$(RPM_NAME)-$(VERSION)-*.rpm) && echo "$$rpm" && rpm -qlp "$$rpm"

# The RPM holds exactly what `make install` installs, with the policy file
# %config(noreplace), a dependency on vdsm, and an architecture.
rpm-check:
	MAKE='$(MAKE)' sh packaging/check-rpm
