#!/usr/bin/env bash
# The test command of README.md and CI: installs dependencies, builds, runs every meson suite,
# then builds again with ASan+UBSan and runs the suites there too. Ends with "N passed, N failed".
# Run as root from the repository (FUSE mounts and ptrace need it).
set -uo pipefail
cd "$(dirname "$0")/.."
top=$PWD

bash tools/install-deps.sh || { echo "run-tests: dependency install failed"; echo "0 passed, 1 failed"; exit 1; }

passed=0
failed=0
count() { # $1 = build dir: add its testlog.json results to the totals
	local p f
	read -r p f < <(python3 - "$1/meson-logs/testlog.json" <<'PY'
import json, sys
p = f = 0
try:
    for line in open(sys.argv[1]):
        r = json.loads(line)
        if r.get("result") in ("OK", "EXPECTEDFAIL", "SKIP"):
            p += 1
        else:
            f += 1
except FileNotFoundError:
    f += 1
print(p, f)
PY
)
	passed=$((passed + p))
	failed=$((failed + f))
}

run_suite() { # $1 = build dir, $2.. = extra meson setup args
	local dir=$1
	shift
	if [ ! -d "$dir" ]; then
		meson setup "$dir" "$@" >"$dir.setup.log" 2>&1 || { cat "$dir.setup.log"; failed=$((failed + 1)); return; }
	fi
	if ! ninja -C "$dir" >"$dir.build.log" 2>&1; then
		tail -50 "$dir.build.log"
		failed=$((failed + 1))
		return
	fi
	meson test -C "$dir" --print-errorlogs --num-processes 2 ${MESON_TEST_ARGS:-}
	count "$dir"
}

run_suite "$top/build"

# Formatting is part of the suite: the repo's .clang-format, checked by meson's target.
if command -v clang-format >/dev/null; then
	if ninja -C "$top/build" clang-format-check >"$top/build/format.log" 2>&1; then
		echo "format: clang-format-check OK"
		passed=$((passed + 1))
	else
		grep -E '^/.*: error' "$top/build/format.log" | cut -d: -f1 | sort -u | sed 's/^/format: needs clang-format: /'
		failed=$((failed + 1))
	fi
fi
if [ "${CKPTFS_SKIP_SANITIZERS:-0}" != 1 ]; then
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		run_suite "$top/build-asan" -Db_sanitize=address,undefined -Db_lundef=false
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
