#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# without-inherited-fds.sh CMD [ARGS...] - runs CMD with only fds 0-2 of its caller. `ckptfs dump`
# refuses a pipe whose other end another process holds (restore could not reconnect it), and
# whatever runs a script (a CI runner, an agent's shell) may leave such pipes open in it; the
# demo and the benchmarks start their targets through this.
# One line, parsed whole before it runs: closing bash's own script fd must not cut it short.
main() { local f; for f in /proc/$BASHPID/fd/*; do f=${f##*/}; [ "$f" -gt 2 ] && eval "exec $f>&-"; done; exec "$@"; }; main "$@"
