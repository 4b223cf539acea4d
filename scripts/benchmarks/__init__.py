"""The sections of ``scripts/bench``, one idea a module; ``scripts/bench`` parses the command line and runs them.

Sections: ``inprocess`` (inprocess, scheduler, fresh, startup, cpu, languages: Reactr in this
process), ``http`` (wrk against ``serve`` and a bare aiohttp handler), ``redis_mode`` (the redis
and workers sections), made of ``redis_async`` (a producer, one call in flight), ``redis_wrk``
(wrk at 32 connections) and ``peers`` (the queue peers' ratios). Below them: ``node`` (a
``serve`` subprocess and a keep-alive client for it), ``producer`` (the producer program),
``wrk`` (one wrk run), ``floors`` (the hand-written hosts the in-process rows are measured
against), ``measure`` (µs per call, interleaved) and ``paths`` (the checkout's files).
A module imports only from those below it.
"""
