"""``maskserve-client bench``: a load generator for a maskserve server's native API.

The parts, each usable on its own:

- :mod:`~maskserve_client.bench.inputs`: the images sent (files, or generated shapes);
- :mod:`~maskserve_client.bench.targets`: one request over REST, gRPC unary or gRPC
  ``SegmentStream``, reduced to an :class:`~maskserve_client.bench.targets.Outcome`;
- :mod:`~maskserve_client.bench.schedule`: seeded Poisson arrival times (open loop);
- :mod:`~maskserve_client.bench.load`: closed and open loops that drive a target;
- :mod:`~maskserve_client.bench.stats`: percentiles and the per-level summary;
- :mod:`~maskserve_client.bench.report`: table, JSON, CSV and the optional plot;
- :mod:`~maskserve_client.bench.cli`: the command's arguments and its run.
"""
