# Sourced by demo.sh and test.sh: a virtual environment in .venv with the package installed.
ensure_venv() {
    local extras="$1"
    if [ ! -x .venv/bin/python ]; then
        python3 -m venv .venv
    fi
    if ! .venv/bin/python -m pip install --disable-pip-version-check -e ".${extras}" \
            > .venv/pip-install.log 2>&1; then
        grep -v "is ignored: it is neither a file nor a directory" .venv/pip-install.log >&2
        echo "installing dcgan into .venv failed (log: .venv/pip-install.log)" >&2
        exit 1
    fi
}
