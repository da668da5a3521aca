"""`ctl serve`: the model server canary pods run (Open Inference Protocol v2 REST, OpenAI embeddings, /metrics).

Serving imports neither torch nor transformers: tokenizers, onnxruntime, numpy, Starlette and uvicorn suffice.
Modules: ``options`` (settings), ``loader`` (registry → verified encoder), ``inference`` (tokenize, batch run,
pool), ``batcher`` (micro-batching, bounded queue), ``protocol`` (request parsing and bad input), ``metrics``
(one definition shared with the local target), ``openapi``, ``app`` (routes), ``server`` (uvicorn, signals).
"""
