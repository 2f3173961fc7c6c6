# sapwf: build, test, demo and install.
#
# Variable names follow LuaRocks (LUA_INCDIR, LIBFLAG, CFLAGS, LUADIR, LIBDIR, PREFIX),
# so `make` and LuaRocks share this file. Compiler flags for Lua and libcurl come from
# pkg-config unless LUA_INCDIR / CURL_INCDIR are given.
#
#   make                  build build/lua5.4/sapwf/core.so
#   make LUA=luajit       build for LuaJIT / OpenResty (Lua 5.1 API), likewise lua5.1, lua5.3
#   make test             install missing Debian packages, build, run the busted specs
#   make test LUA=luajit  the same under LuaJIT (nginx's Lua) with its own build; lua5.1, lua5.3
#   make test BUSTED_FLAGS='--filter=token'   more options for busted
#   make demo             start the local emulator and run examples/quickstart.lua
#   make docs             the API reference of the Lua layer (LDoc, config.ld) in build/docs;
#                         make docs DOCS_DIR=/elsewhere
#   make install PREFIX=/usr/local   (make man install: with the man page, made by help2man)
#   make install-emulator PREFIX=/usr/local   the local emulator too (emulator/, its own rock)
#   make DEV=1            -O0 and stricter warnings;  make SANITIZE=1  ASan + UBSan
#                         (give it a build of its own: make SANITIZE=1 BUILD_DIR=build/asan)
#   make check-layers     check that the C files call only downward (scripts/check-layers.sh)
#   make prism            every call of sapwf through Stoplight Prism with SAP's API definition
#                         (SAPWF_API_DEFINITION, default ../shared/reference/...) as the contract
#   make fuzz             libFuzzer on the C parsers of server input, FUZZ_SECONDS each
#   make bench            sapwf against wrk, h2load, plain libcurl, Node.js fetch, Python
#                         requests and curl, latency, a rate limit, memory, instructions;
#                         writes BENCHMARKS.md and docs/bench-ratelimit.png (about 20
#                         minutes);  make bench QUICK=1  a short run (under 4 minutes);
#                         make bench ONLY=ratelimit  one section (latency, ratelimit, memory,
#                         callgrind), printed only

LUA        ?= lua5.4
LUA_PC     ?= $(LUA)
PKG_CONFIG ?= pkg-config
BUSTED     ?= busted
BUSTED_FLAGS ?=

ifdef LUA_INCDIR
LUA_CFLAGS := -I$(LUA_INCDIR)
else
LUA_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(LUA_PC))
endif
ifdef CURL_INCDIR
CURL_CFLAGS := -I$(CURL_INCDIR)
else
CURL_CFLAGS := $(shell $(PKG_CONFIG) --cflags libcurl)
endif
CURL_LIBS := $(if $(CURL_LIBDIR),-L$(CURL_LIBDIR)) -lcurl

CFLAGS   ?= -O2 -g
WARNINGS := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter
ifeq ($(DEV),1)
CFLAGS   := -O0 -g3
WARNINGS += -Werror
endif
ifeq ($(SANITIZE),1)
CFLAGS   += -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
LDFLAGS  += -fsanitize=address,undefined
endif
LIBFLAG  ?= -shared
ALL_CFLAGS = -std=c99 -D_POSIX_C_SOURCE=200809L -fPIC -fvisibility=hidden $(WARNINGS) \
             $(CFLAGS) $(LUA_CFLAGS) $(CURL_CFLAGS)

# Install locations (LuaRocks passes LUADIR and LIBDIR itself).
PREFIX     ?= /usr/local
LUA_VERSION_DIR := $(patsubst lua%,%,$(LUA))
ifeq ($(LUA),luajit)
LUA_VERSION_DIR := 5.1
endif
LUADIR     ?= $(PREFIX)/share/lua/$(LUA_VERSION_DIR)
LIBDIR     ?= $(PREFIX)/lib/lua/$(LUA_VERSION_DIR)
BINDIR     ?= $(PREFIX)/bin

BUILD_DIR  := build/$(LUA)
OBJ_DIR    := $(BUILD_DIR)/obj
SOURCES    := $(wildcard src/*.c)
HEADERS    := $(wildcard src/*.h)
OBJECTS    := $(patsubst src/%.c,$(OBJ_DIR)/%.o,$(SOURCES))
MODULE     := $(BUILD_DIR)/sapwf/core.so
# Used only with Debian's lua-cjson 2.1.0 (lua/sapwf/compat/cjson21.lua): a module of its
# own, outside sapwf.core.
COMPAT     := $(BUILD_DIR)/sapwf/compat/json_walk.so

.PHONY: all test demo docs man install install-emulator clean deps fuzz bench check-layers prism

all: $(MODULE) $(COMPAT)

$(OBJ_DIR)/%.o: src/%.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

# Never link liblua into the module: the interpreter that loads it provides the symbols.
$(MODULE): $(OBJECTS)
	@mkdir -p $(dir $@)
	$(CC) $(LIBFLAG) $(LDFLAGS) -o $@ $(OBJECTS) $(CURL_LIBS)

$(COMPAT): src/compat/json_walk.c src/compat.h
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(LIBFLAG) $(LDFLAGS) -o $@ src/compat/json_walk.c

# The C files call only downward (scripts/check-layers.sh lists the layers); read from the
# objects' symbols, so it checks what the linker links.
check-layers: $(MODULE)
	@sh scripts/check-layers.sh $(OBJECTS)

deps:
	@sh scripts/ensure-deps.sh

# SAP's API definition as an outside judge of the requests sapwf sends (.ci/prism.lua).
# Prism comes from npm into build/prism; the definition is SAP's and never part of sapwf.
SAPWF_API_DEFINITION ?= ../shared/reference/SAP_CP_Workflow_CF.yaml
PRISM := build/prism/node_modules/.bin/prism
$(PRISM):
	@command -v npm >/dev/null || sh scripts/ensure-deps.sh npm
	@mkdir -p build/prism
	npm install --prefix build/prism --no-audit --no-fund --loglevel=error @stoplight/prism-cli@5

prism: deps $(PRISM)
	@$(MAKE) --no-print-directory all LUA=lua5.4
	@test -f '$(SAPWF_API_DEFINITION)' || { echo "make prism: no API definition at \
	  $(SAPWF_API_DEFINITION) (set SAPWF_API_DEFINITION)" >&2; exit 1; }
	lua5.4 .ci/prism.lua $(PRISM) '$(SAPWF_API_DEFINITION)'

test: deps
	@$(MAKE) --no-print-directory all
	$(BUSTED) --lua=$(LUA) --cpath='./$(BUILD_DIR)/?.so' $(BUSTED_FLAGS)

# The benchmark builds the module again in a directory of its own, with the normal CFLAGS
# (build/$(LUA) may hold a DEV=1 or SANITIZE=1 build), and the C floor programs beside it.
BENCH_DIR := build/bench

bench: deps
	@sh scripts/ensure-deps.sh wrk time python3-requests valgrind nghttp2-client gnuplot-nox nodejs
	@$(MAKE) --no-print-directory BUILD_DIR=$(BENCH_DIR)/$(LUA) all
	@$(MAKE) --no-print-directory LUA=luajit BUILD_DIR=$(BENCH_DIR)/luajit all
	$(CC) $(ALL_CFLAGS) -o $(BENCH_DIR)/keepalive bench/keepalive.c $(CURL_LIBS)
	$(CC) $(ALL_CFLAGS) -o $(BENCH_DIR)/multi bench/multi.c $(CURL_LIBS)
	$(CC) -std=c99 $(WARNINGS) $(CFLAGS) -o $(BENCH_DIR)/turns bench/turns.c
	$(LUA) bench/run.lua --build $(BENCH_DIR) $(if $(QUICK),--quick) \
	  $(if $(WORKERS),--workers $(WORKERS)) $(if $(ONLY),--only $(ONLY))

demo: deps
	@$(MAKE) --no-print-directory all
	SAPWF_BUILD_DIR=$(BUILD_DIR) $(LUA) examples/run-demo.lua

# LDoc exits non-zero on errors but only warns ("path:line: ..." on stderr) about a doc
# comment it cannot attach to code; a warning fails the target too, unless it is about a
# file in DOCS_LAX (paths from the top, e.g. DOCS_LAX=lua/sapwf/batch.lua while a file is
# being reworked). A line of dashes is a doc comment to LDoc: write banners as `-- ----`.
LDOC     ?= ldoc
DOCS_DIR ?= build/docs
DOCS_LAX ?=

docs: deps
	@rm -rf '$(DOCS_DIR)'
	@log=$$(mktemp) && { $(LDOC) --dir '$(DOCS_DIR)' . 2>$$log; status=$$?; cat $$log >&2; \
	  strict=$$($(if $(DOCS_LAX),grep -v -F $(patsubst %,-e '$(CURDIR)/%:',$(DOCS_LAX)),cat) \
	    <$$log); rm -f $$log; \
	  if [ $$status -ne 0 ] || [ -n "$$strict" ]; then \
	    echo "make docs: LDoc failed, or cannot read the doc comments it names above" >&2; \
	    exit 1; fi; }

# The man page is made from `sapwf --help` and `sapwf --version` by help2man, with each
# command's --help in its COMMANDS section, so it says what the command says and is never
# kept by hand. scripts/man-help.sh runs the checkout's launcher ($(LUA) with this
# checkout's modules and build) and puts its text in the shapes help2man reads.
MAN_DIR ?= build/man
MAN_PAGE := $(MAN_DIR)/sapwf.1

man: $(MODULE)
	@sh scripts/ensure-deps.sh help2man
	@mkdir -p $(MAN_DIR)
	sh scripts/man-help.sh $(LUA) commands > $(MAN_DIR)/commands.h2m
	help2man --no-info --no-discard-stderr --name="command line for the SAP BTP Workflow service" \
	  --include=$(MAN_DIR)/commands.h2m --output=$(MAN_PAGE) "sh scripts/man-help.sh $(LUA)"

install: $(MODULE) $(COMPAT)
	install -d $(DESTDIR)$(LIBDIR)/sapwf $(DESTDIR)$(LUADIR)/sapwf $(DESTDIR)$(BINDIR)
	install -m 0755 $(MODULE) $(DESTDIR)$(LIBDIR)/sapwf/core.so
	install -D -m 0755 $(COMPAT) $(DESTDIR)$(LIBDIR)/sapwf/compat/json_walk.so
	cp -R lua/sapwf/. $(DESTDIR)$(LUADIR)/sapwf/
	sed -e '1s|.*|#!/usr/bin/env $(LUA)|' \
	  -e 's|^-- @INSTALLED_PATHS@$$|package.path = "$(LUADIR)/?.lua;$(LUADIR)/?/init.lua;" .. package.path\npackage.cpath = "$(LIBDIR)/?.so;" .. package.cpath|' \
	  bin/sapwf > $(DESTDIR)$(BINDIR)/sapwf
	chmod 0755 $(DESTDIR)$(BINDIR)/sapwf
	if [ -f $(MAN_PAGE) ]; then install -D -m 0644 $(MAN_PAGE) \
	  $(DESTDIR)$(PREFIX)/share/man/man1/sapwf.1; fi

# The emulator is not part of the library: `make install-emulator` puts it beside it (what
# `sapwf emulator` runs; it needs nginx, libnginx-mod-http-lua and openssl).
install-emulator:
	install -d $(DESTDIR)$(LUADIR)/sapwf/emulator
	cp -R emulator/lua/sapwf/emulator/. $(DESTDIR)$(LUADIR)/sapwf/emulator/

# Fuzzing: each fuzz/<name>_fuzz.c is a libFuzzer target over src/headers.c (the C code that
# reads what servers send), built with clang, ASan and UBSan. New inputs go to
# build/fuzz/corpus/<name>; fuzz/corpus/<name> holds the seeds.
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 20
FUZZ_DIR     := build/fuzz
FUZZ_TARGETS := $(patsubst fuzz/%_fuzz.c,%,$(wildcard fuzz/*_fuzz.c))
FUZZ_FLAGS   := -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -Isrc

$(FUZZ_DIR)/%: fuzz/%_fuzz.c src/headers.c src/headers.h
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) $(CURL_CFLAGS) -o $@ $< src/headers.c $(CURL_LIBS)

fuzz: $(addprefix $(FUZZ_DIR)/,$(FUZZ_TARGETS))
	@for t in $(FUZZ_TARGETS); do \
	  mkdir -p $(FUZZ_DIR)/corpus/$$t; \
	  echo "fuzz $$t for $(FUZZ_SECONDS) s"; \
	  $(FUZZ_DIR)/$$t -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	    $(FUZZ_DIR)/corpus/$$t fuzz/corpus/$$t || exit 1; \
	done

clean:
	rm -rf build src/*.o
