# Sourced by scripts/demo.sh and scripts/test.sh: create or reuse .venv in the checkout and
# install mksgn (editable) with the exact versions of requirements.lock when they changed.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$repo/.venv"
python="${MKSGN_PYTHON:-python3.10}"

if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 10))' 2>/dev/null; then
    if ! (cd "$repo" && "$python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 10))') 2>/dev/null; then
        echo "Error: mksgn needs CPython 3.10 (lava-nc 0.10.0 does not run on 3.11)." >&2
        echo "       Install it (pyenv install 3.10, or your OS package python3.10) or point" >&2
        echo "       MKSGN_PYTHON at a 3.10 interpreter, then run this command again." >&2
        exit 1
    fi
    rm -rf "$venv"
    echo "Creating $venv with $("$python" --version 2>&1) ..." >&2
    (cd "$repo" && "$python" -m venv "$venv")
fi

stamp="$venv/.mksgn-installed"
wanted="$(cat "$repo/pyproject.toml" "$repo/requirements.lock" | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
    echo "Installing mksgn and its dependencies into $venv (first time: a few minutes, ~6 GB) ..." >&2
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        -c "$repo/requirements.lock" -e "$repo[test]"
    echo "$wanted" > "$stamp"
fi
export PATH="$venv/bin:$PATH"
