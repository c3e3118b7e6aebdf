#!/usr/bin/env bash
# CI bundle check (Linux): build the one-folder bundle with packaging/mia_elite.spec, then run
# packaging/bundle_figures.py on it: resources present and loaded by the bundle's code (analyze
# of the shipped sample, compared with the same run from source), `mia-elite --self-test` from
# the bundle (offscreen, cold numba cache) which must pass, and the figures: bundle size
# (target <= 300 MB unpacked) and time from start to the first drawn frame (warm target <= 5 s;
# cold printed), one JSON line each.
# The build (packaging/mia_elite.spec) also compiles numba's cache for a generic x86-64 CPU into
# the bundle (_internal/numba_cache_generic): the bundle's own CLI runs its self-test with
# NUMBA_CPU_NAME=generic (numba then targets the architecture's baseline with no CPU features,
# so the compiled kernels load on any x86-64 CPU; app/core/jit.py makes the entries independent
# of the install path). The cold self-test below starts with an empty user cache, as on a new
# machine: packaging/frozen_setup.py seeds it from the shipped one.
#
# Usage: packaging/ci_bundle_check.sh            (from anywhere; uses `python` on PATH)
# Environment:
#   PYTHON                  interpreter with the project installed (default: python, else python3)
#   MIA_BUNDLE_OUT          build/dist folder (default: ${TMPDIR:-/tmp}/mia-elite-bundle)
#   MIA_BUNDLE_BUILD_TIMEOUT  seconds allowed for PyInstaller (default 900)
#   MIA_BUNDLE_SELFTEST_S   length of the self-test (default 15)
# Exit code: 0 when the build, the resource check and the self-test pass (figures are printed,
# targets not enforced); non-zero otherwise. Every step is bounded by a timeout.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
PY="${PYTHON:-$(command -v python || command -v python3)}"
OUT="${MIA_BUNDLE_OUT:-${TMPDIR:-/tmp}/mia-elite-bundle}"
BUILD_TIMEOUT="${MIA_BUNDLE_BUILD_TIMEOUT:-900}"
SELFTEST_S="${MIA_BUNDLE_SELFTEST_S:-15}"
export QT_QPA_PLATFORM=offscreen
export PIP_DISABLE_PIP_VERSION_CHECK=1

t_start=$(date +%s)
echo "== bundle check: python $PY, output $OUT"
if ! "$PY" -c "import PyInstaller" >/dev/null 2>&1; then
  echo "== installing PyInstaller (pip install -e .[packaging])"
  timeout 600 "$PY" -m pip install -q -e ".[packaging]"
fi
"$PY" -c "import PyInstaller, sys; print('== PyInstaller', PyInstaller.__version__, 'on Python', sys.version.split()[0])"
command -v strip >/dev/null 2>&1 || echo "== note: no 'strip' program (binutils): the bundle will not be stripped"

rm -rf "$OUT/dist" "$OUT/build"
mkdir -p "$OUT"
echo "== building (pyinstaller --noconfirm --clean packaging/mia_elite.spec)"
t0=$(date +%s)
set +e
timeout "$BUILD_TIMEOUT" "$PY" -m PyInstaller --noconfirm --clean --log-level WARN \
  --distpath "$OUT/dist" --workpath "$OUT/build" packaging/mia_elite.spec > "$OUT/pyinstaller.log" 2>&1
rc=$?
set -e
t1=$(date +%s)
if [ "$rc" != 0 ]; then
  tail -n 40 "$OUT/pyinstaller.log" >&2
  echo "== bundle build FAILED (rc $rc after $((t1 - t0)) s; log $OUT/pyinstaller.log)" >&2
  exit 1
fi
BUNDLE="$OUT/dist/MIA Elite"
echo "== built in $((t1 - t0)) s: $BUNDLE ($(du -sh "$BUNDLE" | cut -f1))"
grep -h "strip_bundle\|numba_cache_generic" "$OUT/pyinstaller.log" || true

set +e
timeout 1800 "$PY" packaging/bundle_figures.py --bundle "$BUNDLE" --seconds "$SELFTEST_S" --logs "$OUT/logs"
rc=$?
set -e
echo "== bundle check finished in $(( $(date +%s) - t_start )) s (rc $rc)"
exit "$rc"
