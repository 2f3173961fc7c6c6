# Sourced by .ci/run, whose `check` and `suite` it uses: the reliability stages of
# RELIABILITY.md. Each runs the whole spec suite (or the fuzzers) in another way:
#   - under valgrind memcheck: no error and no definite leak (suppressions: .ci/valgrind.supp,
#     only for the once-per-process allocations of libldap, libsasl and OpenSSL);
#   - with the C core built with ASan and UBSan (build/asan-lua5.4);
#   - with the garbage collector at its most aggressive (spec/support/gc_stress.lua);
#   - libFuzzer on the C code that reads server input, FUZZ_SECONDS (20) per target.
# Only the busted process runs under valgrind or the ASan runtime: nginx, curl, openssl and
# the command line it starts run as usual.

sh scripts/ensure-deps.sh valgrind clang libclang-rt-14-dev || true

# These specs drive other processes (luarocks builds, make docs and LDoc, the CLI in a child
# lua5.4, nginx with its own LuaJIT, the emulator through curl; a case tagged #child runs an
# example program in a child Lua): none of their C-core work
# happens inside the busted process that valgrind, ASan or the GC setting watch, so they are
# left out here to keep CI short. So are the bulk cases (tagged #bulk, and spec/52's 20,000
# seeded instances): tens of thousands of requests down the C paths the other cases take,
# there to measure the Lua heap and the paging windows, not the C core, and the HTTP/2
# cases and the batch limiter's pace, whose bounds on time a client under valgrind cannot
# keep. The plain suite stages run
# them all.
IN_PROCESS_ONLY="--exclude-pattern=00%-layers --exclude-pattern=07%-install --exclude-pattern=09%-docs --exclude-pattern=20%-cli --exclude-pattern=30%-openresty --exclude-pattern=52%-paging_window --exclude-pattern=9%d%-emulator --exclude-tags=bulk,child"

valgrind_log=$log_dir/valgrind.log
run_valgrind() {
  valgrind --tool=memcheck --leak-check=full --show-leak-kinds=definite \
    --errors-for-leak-kinds=definite --error-exitcode=99 --trace-children=no \
    --keep-debuginfo=yes --num-callers=40 --suppressions=.ci/valgrind.supp \
    --log-file="$valgrind_log" lua5.4 /usr/bin/busted $IN_PROCESS_ONLY --cpath='./build/lua5.4/?.so'
  local status=$?
  grep -E "ERROR SUMMARY|definitely lost|indirectly lost|suppressed:" "$valgrind_log"
  # the first error's report, if any, for the CI log
  grep -B2 -A30 -m1 -E "Invalid|uninitialised|definitely lost in loss record" "$valgrind_log"
  return $status
}

asan_dir=build/asan-lua5.4
run_asan() {
  make --no-print-directory SANITIZE=1 BUILD_DIR=$asan_dir all >/dev/null || return 1
  gcc -shared -fPIC -o $asan_dir/strip_preload.so .ci/strip_preload.c || return 1
  LD_PRELOAD="$(gcc -print-file-name=libasan.so) $PWD/$asan_dir/strip_preload.so" \
    ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:detect_stack_use_after_return=1 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    lua5.4 /usr/bin/busted $IN_PROCESS_ONLY --cpath="./$asan_dir/?.so"
}

# The stages, by name: .ci/run runs them in its two lanes (reliability_stage valgrind ...).
reliability_stage() {
  case $1 in
    valgrind)
      make --no-print-directory all >/dev/null          # the plain build valgrind runs
      suite "spec suite under valgrind memcheck" run_valgrind ;;
    asan)
      suite "spec suite with ASan + UBSan" run_asan ;;
    gc)
      # (also without spec/19's #midcall cases: they drive the collector themselves)
      suite "spec suite with the GC at its most aggressive" \
        busted --lua=lua5.4 ${IN_PROCESS_ONLY/--exclude-tags=bulk/--exclude-tags=bulk,midcall} \
        --helper=spec/support/gc_stress.lua ;;
    fuzz)
      check "fuzzing: libFuzzer on src/headers.c, ${FUZZ_SECONDS:-20} s per target" \
        make --no-print-directory fuzz FUZZ_SECONDS="${FUZZ_SECONDS:-20}" ;;
  esac
}
