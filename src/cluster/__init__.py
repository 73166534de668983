"""Several hub nodes coordinated through Redis (DESIGN §8).

A session lives on the node that created it; Redis holds what other nodes need to find it, its event
log and its inbox, each node's lease, and the per-API-key admission that must hold across nodes
(`cluster.quota`). With `cluster.redis_url` empty nothing here runs: one node, no Redis.
"""
