#!/usr/bin/env bash
# Measures lockwatch (W1-W4, W7) against itself at a baseline commit, with parking_lot, in
# one process (see probe.rs). Usage, from anywhere in the repository:
#
#   peers/baseline/run.sh [BASELINE_REV] [PROCESSES] [ROUNDS]
#
# BASELINE_REV defaults to 094ceff, the last commit before the wait core, whose figures are
# the limits issue 7 set; each of PROCESSES (default 5) runs ROUNDS (default 150) rounds, and
# one more process runs them with LOCKWATCH=off.
# Everything is built under target/baseline; nothing outside it is touched.
set -euo pipefail
rev=${1:-094ceff}
processes=${2:-5}
rounds=${3:-150}
root=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
work=$root/target/baseline
old=$work/lockwatch-$rev
probe=$work/probe
mkdir -p "$work"
if [ ! -d "$old" ]; then
    git -C "$root" archive --prefix="lockwatch-$rev/" "$rev" | tar -x -C "$work"
    # Two packages named lockwatch cannot be in one build: the baseline gets other names.
    sed -i 's/^name = "lockwatch"$/name = "lockwatch_old"/' "$old/Cargo.toml"
    sed -i 's/^\(lockwatch-detector = { path = "detector"[^}]*\)}/\1, package = "lockwatch-detector-old" }/' "$old/Cargo.toml"
    sed -i 's/^name = "lockwatch-detector"$/name = "lockwatch-detector-old"/' "$old/detector/Cargo.toml"
fi
mkdir -p "$probe/src"
cp "$root/peers/baseline/probe.rs" "$probe/src/main.rs"
cat >"$probe/Cargo.toml" <<TOML
[package]
name = "baseline-probe"
version = "0.0.0"
edition = "2021"
publish = false

[workspace]

[dependencies]
lockwatch = { path = "$root" }
lockwatch_old = { path = "$old" }
parking_lot = "0.12"
TOML
cargo build --quiet --release --manifest-path "$probe/Cargo.toml" --target-dir "$work/target"
# As in the benchmarks: no variable that changes what lockwatch records.
for var in $(env | sed -n 's/^\(LOCKWATCH[A-Z_]*\|RUST_BACKTRACE\)=.*/\1/p'); do unset "$var"; done
echo "baseline $rev vs $(git -C "$root" rev-parse --short HEAD) (and the work tree), $processes processes x $rounds rounds"
for _ in $(seq "$processes"); do
    "$work/target/release/baseline-probe" "$rounds"
    echo
done
# Both builds switched off at run time (the limit: LOCKWATCH=off within 1.1x of parking_lot).
LOCKWATCH=off "$work/target/release/baseline-probe" "$rounds"
