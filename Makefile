# xenify: the commands the README names. `make test` is what CI runs first,
# `make interop` second (.ci/run).

CARGO   ?= cargo
# The read-only references and oracles beside the project.
SHARED  ?= $(firstword $(wildcard ../shared /work/shared))
ORACLE  := $(SHARED)/oracles/check-domain
ALL_LOSSES := nwfilter,link-state,vlan,graphics-security,floppy-media,secure-boot,tpm
INTEROP := target/interop
DEMO    := fixtures/domains/hostedengine-lease.xml

.PHONY: all build test interop demo clean fuzz bench

all: build

build:
	$(CARGO) build --release --locked

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
	    target/release/xenify convert "$$f" --accept $(ALL_LOSSES) -o "$$out" 2>"$$out.report" \
	    || { echo "interop: xenify did not convert $$f:" >&2; cat "$$out.report" >&2; exit 1; }; \
	done
	@for f in $(PVH_DOMAINS); do \
	    out=$(INTEROP)/pvh/$$(basename "$$f"); \
	    target/release/xenify convert "$$f" --config fixtures/interop-pvh.toml -o "$$out" 2>"$$out.report" \
	    || { echo "interop: xenify did not convert $$f as PVH:" >&2; cat "$$out.report" >&2; exit 1; }; \
	done
	$(ORACLE) $(INTEROP)/hvm/*.xml
	$(ORACLE) $(INTEROP)/pvh/*.xml
	@# 300 domains from the property tests' generator: every one that
	@# converts must pass too (a refusal, such as a third CD-ROM, is fine).
	@mkdir -p $(INTEROP)/generated-in $(INTEROP)/generated
	@XENIFY_GENERATE_DIR=$(CURDIR)/$(INTEROP)/generated-in $(CARGO) test -q --locked --test properties write_generated_domains -- --ignored >/dev/null
	@for f in $(INTEROP)/generated-in/*.xml; do \
	    target/release/xenify convert "$$f" --accept $(ALL_LOSSES) -o $(INTEROP)/generated/$$(basename "$$f") 2>/dev/null || true; \
	done
	@$(ORACLE) $(INTEROP)/generated/*.xml >$(INTEROP)/generated.log || { grep -v '^ok' $(INTEROP)/generated.log; exit 1; }
	@echo "ok: $$(grep -c '^ok' $(INTEROP)/generated.log) generated domains"

# One table of costs, all medians from this run: in-process parse against
# pipeline (criterion), the hook against `cp` and a minidom Python hook, and
# `xenify check` over 1,000 domains. See docs/performance.md.
bench: build
	$(CARGO) bench --locked --bench pipeline -- --noplot >/dev/null
	python3 benches/run.py

# Convert a bundled oVirt domain and show what changed.
demo: build
	target/release/xenify convert $(DEMO) --accept nwfilter,graphics-security --diff

clean:
	$(CARGO) clean

# Fuzz the whole pipeline with arbitrary bytes (cargo-fuzz, libFuzzer) for
# FUZZ_SECONDS; crashes land in fuzz/artifacts/pipeline/.
FUZZ_SECONDS ?= 60
fuzz:
	bash fuzz/run $(FUZZ_SECONDS)
