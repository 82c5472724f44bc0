# Sourced by the interop scripts: a throwaway virtualenv holding one pinned
# PyPI package, checked by its reported version.
#
#   pinned_venv DIR PACKAGE VERSION   → sets PY to the virtualenv's python
#
# DIR is reused when it already holds a virtualenv (INTEROP_VENV); PYTHON
# names the interpreter that creates it.

pinned_venv() {
    local dir="$1" package="$2" version="$3"
    if [[ ! -x "$dir/bin/python" ]]; then
        "$PYTHON" -m venv "$dir"
    fi
    "$dir/bin/pip" install --quiet --disable-pip-version-check "$package==$version"
    PY="$dir/bin/python"
    "$PY" - "$package" "$version" <<'PYEOF'
import importlib, sys
module = importlib.import_module(sys.argv[1])
assert module.__version__ == sys.argv[2], (sys.argv[1], module.__version__)
PYEOF
}
