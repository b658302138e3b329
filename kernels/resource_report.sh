#!/usr/bin/env bash
# Kernel resource report: compiles every kernels/*.cu for sm_80 with `ptxas -v` and prints,
# per kernel, registers, static shared memory, stack frame and spill bytes. Exits non-zero
# when any kernel spills registers or has a stack frame (local-memory arrays).
# Usage: kernels/resource_report.sh [path/to/nvcc]   (default: $NVCC, .cache/nvcc, PATH)
set -euo pipefail
cd "$(dirname "$0")/.."
nvcc="${1:-${NVCC:-}}"
if [ -z "$nvcc" ]; then
  if [ -x .cache/nvcc/nvidia/cu13/bin/nvcc ]; then nvcc=.cache/nvcc/nvidia/cu13/bin/nvcc; else nvcc=nvcc; fi
fi
arch="${RESOURCE_ARCH:-sm_80}"
shopt -s nullglob
files=(kernels/*.cu)
if [ ${#files[@]} -eq 0 ]; then
  echo "resource report: no kernels/*.cu files"
  exit 0
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for f in "${files[@]}"; do
  if ! "$nvcc" -cubin -arch="$arch" -std=c++17 -I kernels -Xptxas -v "$f" -o /dev/null >>"$log" 2>&1; then
    cat "$log"
    echo "resource report: nvcc failed on $f" >&2
    exit 1
  fi
done
# ptxas prints, per entry: "Compiling entry function 'K'", "N bytes stack frame, S bytes spill
# stores, L bytes spill loads", "Used R registers, ... M bytes smem".
awk '
  /Compiling entry function/ { match($0, /'"'"'[^'"'"']+'"'"'/); name = substr($0, RSTART + 1, RLENGTH - 2) }
  /bytes stack frame/ { stack = $1; spill_st = $5; spill_ld = $9 }
  /Used [0-9]+ registers/ {
    match($0, /Used [0-9]+ registers/); regs = substr($0, RSTART + 5, RLENGTH - 15)
    smem = 0; if (match($0, /[0-9]+ bytes smem/)) smem = substr($0, RSTART, RLENGTH - 11)
    printf "%-40s %5s %8s %7s %7s %7s\n", name, regs, smem, stack, spill_st, spill_ld
    n++
    if (stack + 0 > 0 || spill_st + 0 > 0 || spill_ld + 0 > 0) { bad = bad " " name }
  }
  BEGIN { printf "%-40s %5s %8s %7s %7s %7s\n", "kernel", "regs", "smem(B)", "stack", "spill-st", "spill-ld" }
  END {
    printf "%d kernels (%s)\n", n, "'"$arch"'"
    if (bad != "") { print "FAIL: spills or local-memory stack frames in:" bad; exit 1 }
    print "OK: no spills, no local memory"
  }' "$log"
