"""Serving models over HTTP with the Open Inference Protocol (KServe V2 REST).

* :mod:`advx.serve.protocol` — encoding and decoding of V2 requests and responses (JSON,
  and Triton's binary tensor extension), shared by the server and the client.
* :mod:`advx.serve.client` — :class:`~advx.serve.client.OipClient`, a small synchronous
  client with batching, time-outs, retries and API keys (used by
  :class:`advx.adapters.HttpTarget`).
* :mod:`advx.serve.server` — :func:`~advx.serve.server.create_app`, the FastAPI app
  behind ``advx serve`` (authentication, per-key query budgets, body limits, validation).

Importing this package is cheap: FastAPI and httpx load inside the modules that use them.
"""
