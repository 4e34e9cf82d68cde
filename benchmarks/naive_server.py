"""The baseline for benchmarks/serve_load.py: what people write first. A FastAPI app that calls
`transformers.pipeline` on each request's texts (no cross-request batching, no guard, no log).

    .venv/bin/python benchmarks/naive_server.py MODEL_SPEC PORT
"""

from __future__ import annotations

import sys

from fastapi import FastAPI
from pydantic import BaseModel


class ClassifyRequest(BaseModel):
    texts: list[str]


def build(spec_path: str) -> FastAPI:
    from transformers import pipeline

    from textgate.model import load_classifier, load_model_spec

    classifier = load_classifier(load_model_spec(spec_path))  # the same merged model as textgate
    pipe = pipeline("text-classification", model=classifier.model, tokenizer=classifier.tokenizer, device="cpu")
    app = FastAPI()

    @app.post("/v1/classify")
    def classify(request: ClassifyRequest) -> dict:  # sync: FastAPI runs it in its thread pool
        outputs = pipe(request.texts, truncation=True, max_length=classifier.max_length)
        return {"results": [{"label": o["label"], "score": o["score"]} for o in outputs]}

    @app.get("/readyz")
    def ready() -> dict:
        return {"ready": True}

    return app


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(build(sys.argv[1]), host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
