#!/usr/bin/env bash
# Sourced by the scripts that start a `dormwatt demo` of their own
# (e2e/lib/server.sh, scripts/attack.sh): free loopback ports.

# One free TCP port on 127.0.0.1.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# The simulated gateways listen on base_port + i: a free block of 128 ports
# so parallel runs (and a developer's own demo) do not collide.
free_block() {
  python3 - <<'PY'
import random, socket
for _ in range(200):
    b = random.randrange(30000, 60000 - 128)
    socks = []
    try:
        for p in range(b, b + 128):
            s = socket.socket(); s.bind(("127.0.0.1", p)); socks.append(s)
        print(b); break
    except OSError:
        pass
    finally:
        for s in socks: s.close()
PY
}
