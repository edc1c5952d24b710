# xenify: the commands the README names. `make test` is what CI runs first,
# `make interop` second (.ci/run).

CARGO   ?= cargo
# The read-only references and oracles beside the project.
SHARED  ?= $(firstword $(wildcard ../shared /work/shared))
ORACLE  := $(SHARED)/oracles/check-domain
ALL_LOSSES := nwfilter,link-state,vlan,graphics-security,floppy-media,secure-boot,tpm,scsi-passthrough
INTEROP := target/interop
DEMO    := fixtures/domains/hostedengine-lease.xml

.PHONY: all build test interop demo clean fuzz bench install uninstall rpm rpm-check have-rpmbuild

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
	@rm -rf $(INTEROP)/vdsm-lib && cp -r $(SHARED)/oracles/vdsm/vdsm-lib $(INTEROP)/vdsm-lib && chmod -R u+w $(INTEROP)/vdsm-lib
	@for p in packaging/vdsm/*.patch; do patch -s -d $(INTEROP)/vdsm-lib -p2 <"$$p" || { echo "interop: $$p does not apply to Vdsm" >&2; exit 1; }; done
	python3 tests/interop/vdsm.py --xenify $(XENIFY_BIN) --shared $(SHARED) --work $(INTEROP)/vdsm-patched --vdsm-lib $(INTEROP)/vdsm-lib

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
VDSM_HOOKS_DIR ?= /usr/libexec/vdsm/hooks
# What install created, so that uninstall removes that and nothing else.
MANIFEST       ?= $(PREFIX)/share/xenify/installed
# The Vdsm hook points that get a link to xenify: those whose output Vdsm
# uses (hooks/README.md says why each, and why not the others). The same
# list as `xenify generate hook-points` and packaging/xenify.spec
# (tests/install.rs compares them).
HOOK_POINTS := before_vm_start before_device_create before_nic_hotplug \
               before_disk_hotplug before_update_device before_memory_hotplug

INSTALL_ENV = DESTDIR='$(DESTDIR)' PREFIX='$(PREFIX)' BINDIR='$(BINDIR)' MANDIR='$(MANDIR)' \
	BASHCOMPDIR='$(BASHCOMPDIR)' ZSHCOMPDIR='$(ZSHCOMPDIR)' FISHCOMPDIR='$(FISHCOMPDIR)' \
	SYSCONFDIR='$(SYSCONFDIR)' VDSM_HOOKS_DIR='$(VDSM_HOOKS_DIR)' MANIFEST='$(MANIFEST)' \
	HOOK_POINTS='$(HOOK_POINTS)' XENIFY_BIN='$(XENIFY_BIN)'

# The binary, a link 50_xenify to it in each hook point's directory, the
# default policy unless /etc/xenify/xenify.toml exists, man pages and
# completions. packaging/install.sh does the work and keeps the manifest.
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
