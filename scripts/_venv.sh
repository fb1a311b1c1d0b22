# Sourced by demo.sh and test.sh: a virtual environment in .venv with the package installed.
ensure_venv() {
    local extras="$1" started=$SECONDS
    if [ ! -x .venv/bin/python ]; then
        echo "setting up .venv: installing dcgan and TensorFlow (about 600 MB to download;" \
             "a few minutes the first time, seconds after that)" >&2
        python3 -m venv .venv
    else
        echo "checking that .venv has everything dcgan needs" >&2
    fi
    : > .venv/pip-install.log
    if ! .venv/bin/python -m pip install --disable-pip-version-check --progress-bar off \
            -e ".${extras}" 2>&1 | _pip_progress; then
        grep -v "is ignored: it is neither a file nor a directory" .venv/pip-install.log >&2
        echo "installing dcgan into .venv failed (log: .venv/pip-install.log)" >&2
        exit 1
    fi
    echo "  .venv ready in $((SECONDS - started)) s (pip's log: .venv/pip-install.log)" >&2
}

# pip's output goes to the log; a person sees one line that moves with each package (on a
# terminal) or a line when the download is over and the installation begins (in a log).
_pip_progress() {
    local count=0 line name
    while IFS= read -r line; do
        printf '%s\n' "$line" >> .venv/pip-install.log
        case "$line" in
            Collecting\ *|Requirement\ already\ satisfied:\ *)
                count=$((count + 1))
                name=${line#Collecting }
                name=${name#Requirement already satisfied: }
                if [ -t 2 ]; then
                    printf '\r\033[K  %d packages: %.50s' "$count" "${name%% *}" >&2
                fi
                ;;
            Installing\ collected\ packages:*)
                [ -t 2 ] && printf '\r\033[K' >&2
                echo "  $count packages resolved; installing them (TensorFlow takes the longest)" >&2
                ;;
        esac
    done
    if [ -t 2 ]; then printf '\r\033[K' >&2; fi
}
