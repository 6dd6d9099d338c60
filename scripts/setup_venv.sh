#!/usr/bin/env bash
# Creates .venv/ at the repository root from the pinned lock file and installs the
# project into it. Re-running is cheap: nothing is reinstalled when the lock is unchanged.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
stamp="$venv/.installed-lock"

find_python310() {
  local candidate
  for candidate in "${PYTHON:-}" python3.10; do
    if [ -n "$candidate" ] && "$candidate" -c 'import sys; assert sys.version_info[:2] == (3, 10)' 2>/dev/null; then
      echo "$candidate"; return 0
    fi
  done
  # pyenv installs 3.10 without putting it first on PATH.
  if command -v pyenv >/dev/null 2>&1; then
    local prefix
    prefix="$(pyenv prefix "$(pyenv versions --bare | grep -E '^3\.10(\.|$)' | tail -n 1)" 2>/dev/null || true)"
    if [ -n "$prefix" ] && [ -x "$prefix/bin/python3.10" ]; then
      echo "$prefix/bin/python3.10"; return 0
    fi
  fi
  echo "error: Python 3.10 is required (TFX 1.16 does not support 3.11); set PYTHON=/path/to/python3.10" >&2
  return 1
}

if [ ! -x "$venv/bin/python" ]; then
  python="$(find_python310)"
  echo "creating $venv with $python" >&2
  "$python" -m venv "$venv"
fi

# The stamp is the lock plus setup.py: a changed console script reinstalls the project.
if [ -f "$stamp" ] && cat "$root/requirements.lock" "$root/setup.py" | cmp -s "$stamp" -; then
  exit 0
fi
echo "installing the pinned dependencies from requirements.lock into $venv" >&2
"$venv/bin/python" -m pip install --quiet --upgrade "pip==24.2"
# The lock pins every package, so pip resolves nothing; --no-deps keeps it that way.
"$venv/bin/python" -m pip install --quiet --no-deps -r "$root/requirements.lock"
"$venv/bin/python" -m pip install --quiet --no-deps --no-build-isolation -e "$root"
cat "$root/requirements.lock" "$root/setup.py" > "$stamp"
