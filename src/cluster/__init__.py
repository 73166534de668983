"""Several hub nodes coordinated through Redis (DESIGN §8).

A session is computed on the node that created it (its owner). The owner appends every event of the
session to a Redis Stream (`log.py`), holds a lease that says it is alive (`lease.py`) and reads the
commands that clients attached elsewhere send it (`inbox.py`). Any other node serves such a client
through a bridge (`bridge.py`, `remote.py`): events from the log, commands to the owner's inbox; and when
the owner's lease is gone, it takes the session over (`lost.py`, `takeover.py`), or where it cannot, ends
the session in the log itself (`node_lost`). `node.py` ties these together.
"""
