#!/usr/bin/env bash
# The renderings checked by their real consumers:
#   sarif  -> `sarif-multitool validate` (npm @microsoft/sarif-multitool) and the SARIF 2.1.0
#             JSON schema (shipped in that npm package) with PyPI `jsonschema`
#   dot    -> Graphviz `dot -Tsvg` (apt graphviz)
#   svg    -> well-formed XML (`xmllint --noout`, apt libxml2-utils; python's parser as a
#             fallback) and rendered by `rsvg-convert` (apt librsvg2-bin)
#   json   -> every line parses back as a `lockwatch.report/v1` object (python)
#   github -> every line is a well-formed workflow command (python)
# The fixtures are those of detector/tests/render_golden.rs, written by its ignored test
# `write_renderings`, one file per fixture and format plus `all.<ext>` with all of them.
#
# A tool that cannot be installed is reported in the log and its check skipped: an install
# failure never fails this script. A rendering a consumer rejects does (exit 1).
set -uo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

# Tools are installed here once and reused by later runs on the same machine.
tools="${LOCKWATCH_CONSUMERS_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/lockwatch-consumers}"
# The npm package version whose rules and schema the renderings are checked against.
multitool_version="5.7.0"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

failures=0
say() { echo "consumers: $*"; }
fail() {
    echo "consumers: FAIL: $*"
    failures=$((failures + 1))
}
skip() { echo "consumers: SKIP: $*"; }

echo "== render the golden fixtures in every format"
if ! LOCKWATCH_RENDER_DIR="$out" cargo test -q -p lockwatch-detector --test render_golden \
    -- --ignored --exact write_renderings; then
    fail "the renderings could not be written"
    exit 1
fi
say "$(find "$out" -type f | wc -l) files in $out"

echo "== install the consumers"
mkdir -p "$tools"
apt_packages=()
command -v dot >/dev/null 2>&1 || apt_packages+=(graphviz)
command -v rsvg-convert >/dev/null 2>&1 || apt_packages+=(librsvg2-bin)
command -v xmllint >/dev/null 2>&1 || apt_packages+=(libxml2-utils)
if ((${#apt_packages[@]})); then
    sudo=""
    if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1; then sudo="sudo -n"; fi
    if command -v apt-get >/dev/null 2>&1; then
        say "apt-get install ${apt_packages[*]}"
        { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
            $sudo apt-get install -y -qq --no-install-recommends "${apt_packages[@]}"; } \
            >"$tools/apt.log" 2>&1 || say "apt-get failed (see $tools/apt.log)"
    else
        say "no apt-get: cannot install ${apt_packages[*]}"
    fi
fi

multitool="$tools/npm/node_modules/.bin/sarif-multitool"
schema="$tools/npm/node_modules/@microsoft/sarif-multitool-linux/sarif-2.1.0.json"
if [ ! -x "$multitool" ]; then
    if command -v npm >/dev/null 2>&1; then
        say "npm install @microsoft/sarif-multitool@$multitool_version"
        npm install --prefix "$tools/npm" --no-audit --no-fund --loglevel=error \
            "@microsoft/sarif-multitool@$multitool_version" >"$tools/npm.log" 2>&1 ||
            say "npm install failed (see $tools/npm.log)"
    else
        say "no npm: cannot install @microsoft/sarif-multitool"
    fi
fi
# Its postinstall step only marks the .NET binary executable; npm may be set to skip
# install scripts, so do it here.
for bin in "$tools"/npm/node_modules/@microsoft/sarif-multitool-linux/Sarif.Multitool; do
    [ -f "$bin" ] && chmod u+x "$bin"
done

python="$tools/venv/bin/python"
if ! "$python" -c 'import jsonschema' >/dev/null 2>&1; then
    if command -v python3 >/dev/null 2>&1; then
        say "pip install jsonschema (in $tools/venv)"
        { python3 -m venv "$tools/venv" && "$tools/venv/bin/pip" install -q jsonschema; } \
            >"$tools/pip.log" 2>&1 || say "pip install jsonschema failed (see $tools/pip.log)"
    else
        say "no python3: cannot install jsonschema"
    fi
fi
plain_python="$(command -v python3 || true)"

echo "== sarif: sarif-multitool validate"
if [ -x "$multitool" ] && "$multitool" --version >/dev/null 2>&1; then
    for f in "$out"/*.sarif; do
        log="$out/$(basename "$f").validate.txt"
        if ! "$multitool" validate "$f" --output "$log.sarif" >"$log" 2>&1; then
            cat "$log"
            fail "sarif-multitool validate exited non-zero on $(basename "$f")"
        # It exits 0 with findings: an error or a warning of its rules is a failure too.
        elif grep -E ': (error|warning) [A-Z]+[0-9]+' "$log"; then
            fail "sarif-multitool validate reports problems in $(basename "$f")"
        else
            say "ok: $(basename "$f")"
        fi
    done
else
    skip "sarif-multitool is not installed"
fi

echo "== sarif: the SARIF 2.1.0 JSON schema"
if [ -f "$schema" ] && [ -x "$python" ] && "$python" -c 'import jsonschema' 2>/dev/null; then
    if "$python" - "$schema" "$out"/*.sarif <<'EOF'; then
import json, sys
import jsonschema
schema = json.load(open(sys.argv[1], encoding="utf-8"))
validator = jsonschema.validators.validator_for(schema)(schema)
bad = 0
for path in sys.argv[2:]:
    errors = sorted(validator.iter_errors(json.load(open(path, encoding="utf-8"))), key=str)
    for e in errors:
        print(f"{path}: {'/'.join(map(str, e.absolute_path))}: {e.message}")
    bad += bool(errors)
    if not errors:
        print(f"consumers: ok: {path.rsplit('/', 1)[-1]}")
sys.exit(1 if bad else 0)
EOF
        :
    else
        fail "a SARIF log does not validate against the schema"
    fi
else
    skip "the SARIF schema or python jsonschema is not installed"
fi

echo "== dot: Graphviz"
if command -v dot >/dev/null 2>&1; then
    mkdir -p "$out/dot"
    for f in "$out"/*.dot; do
        if dot -Tsvg "$f" -o "$out/dot/$(basename "$f").svg" 2>"$out/dot.err" && ! [ -s "$out/dot.err" ]; then
            say "ok: $(basename "$f")"
        else
            cat "$out/dot.err"
            fail "dot rejects $(basename "$f")"
        fi
    done
else
    skip "graphviz is not installed"
fi

echo "== svg: well-formed XML"
if command -v xmllint >/dev/null 2>&1; then
    for f in "$out"/*.svg; do
        if xmllint --noout "$f"; then say "ok: $(basename "$f")"; else fail "xmllint rejects $(basename "$f")"; fi
    done
elif [ -n "$plain_python" ]; then
    for f in "$out"/*.svg; do
        if "$plain_python" -c 'import sys, xml.dom.minidom as m; m.parse(sys.argv[1])' "$f"; then
            say "ok: $(basename "$f")"
        else
            fail "not well-formed XML: $(basename "$f")"
        fi
    done
else
    skip "neither xmllint nor python3 is installed"
fi

echo "== svg: rsvg-convert"
if command -v rsvg-convert >/dev/null 2>&1; then
    for f in "$out"/*.svg; do
        png="$out/$(basename "$f").png"
        if rsvg-convert -o "$png" "$f" 2>"$out/rsvg.err" && [ -s "$png" ] && ! [ -s "$out/rsvg.err" ]; then
            say "ok: $(basename "$f")"
        else
            cat "$out/rsvg.err"
            fail "rsvg-convert cannot render $(basename "$f")"
        fi
    done
else
    skip "librsvg2-bin is not installed"
fi

echo "== json and github: parse back"
if [ -n "$plain_python" ]; then
    if "$plain_python" - "$out" <<'EOF'; then
import glob, json, re, sys
bad = 0
for path in sorted(glob.glob(sys.argv[1] + "/*.json")):
    for n, line in enumerate(open(path, encoding="utf-8"), 1):
        report = json.loads(line)
        if report.get("schema") != "lockwatch.report/v1":
            print(f"{path}:{n}: not a lockwatch.report/v1 object")
            bad += 1
# ::error file=..,line=..,col=..,title=..::message, properties free of raw `,` and `:` and no
# raw line breaks anywhere.
command = re.compile(r"^::(error|warning)( [a-zA-Z]+=[^,:\r\n]*(,[a-zA-Z]+=[^,:\r\n]*)*)?::[^\r]*$")
for path in sorted(glob.glob(sys.argv[1] + "/*.github")):
    for n, line in enumerate(open(path, encoding="utf-8", newline="\n"), 1):
        if not command.match(line.rstrip("\n")):
            print(f"{path}:{n}: not a workflow command: {line!r}")
            bad += 1
print(f"consumers: json and github lines checked, {bad} bad")
sys.exit(1 if bad else 0)
EOF
        :
    else
        fail "a json or github rendering does not parse"
    fi
else
    skip "python3 is not installed"
fi

if ((failures)); then
    echo "consumers: $failures check(s) failed"
    exit 1
fi
echo "consumers: every rendering is accepted by its consumer"
