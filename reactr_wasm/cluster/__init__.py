"""Redis mode: several nodes share one Redis for the queue, the results and who serves what.

- ``messages.py``: what a queued job and a delivery of it are (msgpack on the wire);
- ``queue.py``: durable submit, consume, complete, extend, reclaim, cancel on Redis Streams;
- ``nodes.py``: node ids, heartbeats, the live view of which runnables some node serves;
- ``worker.py``: the loop a node runs: queued jobs onto the local ``Reactr``, outcomes back.

The records themselves live in ``backends/redis_results.py``. Everything here needs
the optional ``redis`` package, imported when a link is made; ``docs/cluster.md``
describes the key layout and the delivery guarantees.
"""
