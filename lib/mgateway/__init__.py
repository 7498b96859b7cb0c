# The gateway (docs/GATEWAY.md): sleeping and datagram-linked nodes presented to a Mesos master as agents.
# MIT licence. Host-side (MicroPython unix port); nothing here runs on a node. Entry point: mgateway.gateway.
