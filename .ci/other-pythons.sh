#!/usr/bin/env bash
# Run by `make test` after the full suite: on every other Python named (e.g. python3.12 python3.13) that this
# machine has, a venv from the same lock file and the suite without the `slow` tests (the full suite runs
# once, on the primary Python: CI's budget is 40 min on 2 cores). Prints which versions ran and how long.
set -uo pipefail
cd "$(dirname "$0")/.."
primary=$("$PY_PRIMARY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
summary=("$("$PY_PRIMARY" -c 'import platform; print(platform.python_version())'): full suite (above)")
status=0

find_python() {  # a working interpreter for "pythonX.Y": on PATH, else one pyenv installed
  local cand
  for cand in "$(command -v "$1" 2>/dev/null)" "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"${1#python}".*/bin/"$1"; do
    if [ -n "$cand" ] && [ -x "$cand" ] && "$cand" -c 'pass' 2>/dev/null; then echo "$cand"; return 0; fi
  done
  return 1
}

for name in "$@"; do
  version=${name#python}
  [ "$version" = "$primary" ] && continue
  if ! py=$(find_python "$name"); then
    summary+=("$version: not installed, skipped")
    continue
  fi
  venv=".venv-$version"
  stamp="$venv/.installed-$(sha256sum requirements-dev.lock pyproject.toml | sha256sum | cut -c1-16)"
  start=$(date +%s)
  if [ ! -e "$stamp" ]; then
    rm -rf "$venv" && "$py" -m venv "$venv" \
      && "$venv/bin/python" -m pip install -q --require-hashes -r requirements-dev.lock \
      && "$venv/bin/python" -m pip install -q --no-deps --no-build-isolation -e . \
      && "$venv/bin/python" -m pip check >/dev/null && touch "$stamp" \
      || { summary+=("$version: installing the lock FAILED"); status=1; continue; }
  fi
  installed=$(date +%s)
  echo "== Python $("$venv/bin/python" -c 'import platform; print(platform.python_version())'): suite without slow tests"
  if "$venv/bin/python" -m pytest -q -p no:cacheprovider -m "not slow"; then result=passed; else result=FAILED; status=1; fi
  summary+=("$("$venv/bin/python" -c 'import platform; print(platform.python_version())'): not-slow suite $result in $(( $(date +%s) - installed ))s (venv $(( installed - start ))s)")
done
echo "Python versions tested:"
printf '  %s\n' "${summary[@]}"
exit $status
