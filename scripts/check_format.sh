#!/usr/bin/env bash
# The C++ and CUDA sources follow .clang-format (a CTest test): prints the files clang-format
# would change and exits 1; exits 5 (CTest: skipped) when clang-format 14, whose output the
# style is pinned to, is not installed. `scripts/check_format.sh --fix` reformats in place.
set -euo pipefail
cd "$(dirname "$0")/.."
CF=$(command -v clang-format-14 || command -v clang-format || true)
if [ -z "$CF" ] || ! "$CF" --version | grep -q "version 14\."; then
  echo "skipped: clang-format 14 not found (apt-get install clang-format)"
  exit 5
fi
mapfile -t files < <(git ls-files '*.cpp' '*.hpp' '*.cu' '*.cuh')
if [ "${1:-}" = --fix ]; then
  "$CF" -i "${files[@]}"
  exit 0
fi
bad=()
for f in "${files[@]}"; do
  "$CF" --dry-run --Werror "$f" >/dev/null 2>&1 || bad+=("$f")
done
if ((${#bad[@]})); then
  printf 'not formatted (scripts/check_format.sh --fix): %s\n' "${bad[@]}"
  exit 1
fi
echo "format: ${#files[@]} files follow .clang-format"
