"""A tiny MLServer model for the preset tests (loaded by a real ``mlserver start`` in its own venv).

``parameters.extra``: ``fail_every`` N raises on every N-th request (0: never), ``delay_ms`` sleeps first.
"""

from __future__ import annotations

import asyncio

from mlserver import MLModel  # type: ignore[import-not-found]
from mlserver.types import InferenceRequest, InferenceResponse, ResponseOutput  # type: ignore[import-not-found]


class FlakyModel(MLModel):  # type: ignore[misc]
    async def load(self) -> bool:
        extra = (self.settings.parameters.extra if self.settings.parameters else None) or {}
        self._fail_every = int(extra.get("fail_every", 0))
        self._delay_s = float(extra.get("delay_ms", 0)) / 1000.0
        self._served = 0
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        self._served += 1
        if self._delay_s:
            await asyncio.sleep(self._delay_s)
        if self._fail_every and self._served % self._fail_every == 0:
            raise RuntimeError("injected failure")
        total = float(sum(payload.inputs[0].data.root))  # type: ignore[union-attr]
        output = ResponseOutput(name="sum", shape=[1], datatype="FP64", data=[total])
        return InferenceResponse(model_name=self.name, model_version=self.version, outputs=[output])
